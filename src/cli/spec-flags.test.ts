import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSpec } from "../core/sandbox-spec.js";
import { commandTimeoutSeconds, lifetimeSeconds, MAX_LIFETIME_SECONDS, parseDuration, shareFrom, specFrom } from "./spec-flags.js";

test("--timeout accepts what the spec's lifetime.timeoutSeconds accepts, no more", () => {
  assert.equal(parseSpec({ template: "busybox", lifetime: { timeoutSeconds: MAX_LIFETIME_SECONDS } }).lifetime.timeoutSeconds, MAX_LIFETIME_SECONDS);
  assert.throws(() => parseSpec({ template: "busybox", lifetime: { timeoutSeconds: MAX_LIFETIME_SECONDS + 1 } }));
  assert.throws(() => parseSpec({ template: "busybox", lifetime: { timeoutSeconds: 0 } }));
  assert.equal(lifetimeSeconds(String(MAX_LIFETIME_SECONDS)), MAX_LIFETIME_SECONDS);
  assert.equal(lifetimeSeconds("30d"), MAX_LIFETIME_SECONDS);
  assert.equal(lifetimeSeconds("1"), 1);
  for (const bad of ["0", "31d", "1.5", "-3", "ten", ""]) assert.throws(() => lifetimeSeconds(bad), /from 1 to 2592000/, bad);
});

test("durations: plain seconds or a unit", () => {
  assert.deepEqual(["90", "90s", "10m", "1.5h", "7d", " 2m ", ".5"].map(parseDuration), [90, 90, 600, 5400, 604800, 120, 0.5]);
  assert.deepEqual(["", "m", "1x", "1 2", "-1", "1e3"].map(parseDuration), [undefined, undefined, undefined, undefined, undefined, undefined]);
  assert.equal(commandTimeoutSeconds("0.5"), 0.5);
  assert.throws(() => commandTimeoutSeconds("0"), /positive number of seconds/);
});

test("flags become a spec input the schema accepts", () => {
  const spec = specFrom({ template: "busybox", backend: "container", env: ["A=1"], label: ["k=v"], memory: "64M", cpus: "0.5", timeout: "10m" });
  assert.equal(parseSpec(spec).lifetime.timeoutSeconds, 600);
  assert.deepEqual([spec.env, spec.labels, spec.resources], [{ A: "1" }, { k: "v" }, { memory: "64M", vcpus: 0.5 }]);
  assert.throws(() => specFrom({ template: "busybox", backend: "container", env: ["novalue"], label: [] }), { code: "invalid_argument", message: '--env must be KEY=VALUE, got "novalue"' });
});

test("--share SRC:TARGET[:ro] and --share-host-store become the spec's shares", () => {
  const spec = specFrom({ template: "busybox", backend: "container", env: [], label: [], share: ["/srv/w:/work", "/srv/d:/data:ro", "/a:b:/c:rw"], shareHostStore: true });
  assert.deepEqual(parseSpec(spec).shares, [
    { source: "/nix/store", target: "/nix/store", readOnly: true },
    { source: "/srv/w", target: "/work", readOnly: false },
    { source: "/srv/d", target: "/data", readOnly: true },
    { source: "/a:b", target: "/c", readOnly: false },
  ]);
  assert.equal(specFrom({ template: "busybox", backend: "container", env: [], label: [] }).shares, undefined);
  for (const bad of ["/srv", ":/x", "/srv:", "/srv:ro"]) assert.throws(() => shareFrom(bad), { code: "invalid_argument" }, bad);
});

test("--mac and --cid become a VM's fixed identity, which the schema checks", () => {
  const spec = specFrom({ template: "busybox", backend: "vm", env: [], label: [], mac: "52:54:00:00:00:01", cid: "4242" });
  assert.deepEqual(spec.identity, { mac: "52:54:00:00:00:01", cid: 4242 });
  assert.deepEqual(parseSpec(spec).identity, { mac: "52:54:00:00:00:01", cid: 4242 });
  assert.equal(specFrom({ template: "busybox", backend: "vm", env: [], label: [] }).identity, undefined);
  assert.throws(() => parseSpec(specFrom({ template: "busybox", backend: "vm", env: [], label: [], cid: "x" })), /identity\.cid/);
});
