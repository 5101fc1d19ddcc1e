import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSpec, DEFAULT_EPHEMERAL_TIMEOUT_S } from "./sandbox-spec.js";
import { InvalidSpecError } from "./errors.js";

test("defaults are filled in", () => {
  const s = parseSpec({ template: "busybox" });
  assert.equal(s.backend, "container");
  assert.equal(s.resources.memory, 512 * 1024 ** 2);
  assert.equal(s.resources.vcpus, 1);
  assert.equal(s.resources.pids, 1024);
  assert.equal(s.resources.disk, 1024 ** 3);
  assert.equal(s.workdir, "/");
  assert.equal(s.network, "none");
  assert.equal(s.lifetime.mode, "ephemeral");
  assert.equal(s.lifetime.timeoutSeconds, DEFAULT_EPHEMERAL_TIMEOUT_S);
  assert.deepEqual(s.env, {});
});

test("persistent sandboxes have no timeout unless given", () => {
  assert.equal(parseSpec({ template: "t", lifetime: { mode: "persistent" } }).lifetime.timeoutSeconds, undefined);
  assert.equal(parseSpec({ template: "t", lifetime: { mode: "persistent", timeoutSeconds: 9 } }).lifetime.timeoutSeconds, 9);
});

test("sizes accept units", () => {
  const s = parseSpec({ template: "t", resources: { memory: "64M", disk: "1.5GiB" } });
  assert.equal(s.resources.memory, 64 * 1024 ** 2);
  assert.equal(s.resources.disk, 1.5 * 1024 ** 3);
});

function issuesOf(input: unknown): Record<string, string> {
  try {
    parseSpec(input);
  } catch (e) {
    assert.ok(e instanceof InvalidSpecError);
    assert.equal(e.status, 400);
    return Object.fromEntries(e.issues.map((i) => [i.path, i.message]));
  }
  assert.fail("expected InvalidSpecError");
}

test("every bad field is named by its path", () => {
  const issues = issuesOf({
    name: "Bad Name",
    template: "busybox",
    resources: { memory: "lots", pids: 2, vcpus: -1 },
    env: { "1X": "y" },
    workdir: "relative",
    lifetime: { mode: "forever" },
    extra: 1,
  });
  assert.match(issues["name"] ?? "", /lowercase/);
  assert.match(issues["resources.memory"] ?? "", /size like/);
  assert.match(issues["resources.pids"] ?? "", /at least 8/);
  assert.match(issues["resources.vcpus"] ?? "", /at least/);
  assert.match(issues["env.1X"] ?? "", /names/);
  assert.match(issues["workdir"] ?? "", /absolute/);
  assert.ok(issues["lifetime.mode"]);
  assert.match(issues[""] ?? "", /unknown field.*extra/);
});

test("missing template is required", () => {
  assert.equal(issuesOf({})["template"], "is required");
  assert.ok(issuesOf({ template: "../etc" })["template"]);
});

test("memory below the floor is refused with the bound", () => {
  assert.match(issuesOf({ template: "t", resources: { memory: "1M" } })["resources.memory"] ?? "", /between/);
});

test("vmm: QEMU by default for VMs, one of three, refused for containers by its path", () => {
  assert.equal(parseSpec({ template: "t", backend: "vm" }).vmm, "qemu");
  assert.equal(parseSpec({ template: "t", backend: "vm", vmm: "firecracker" }).vmm, "firecracker");
  assert.equal(parseSpec({ template: "t", backend: "vm", vmm: "cloud-hypervisor" }).vmm, "cloud-hypervisor");
  assert.equal("vmm" in parseSpec({ template: "t" }), false, "a container's spec has no vmm");
  assert.match(issuesOf({ template: "t", vmm: "qemu" })["vmm"] ?? "", /needs backend "vm", not "container"/);
  assert.match(issuesOf({ template: "t", backend: "container", vmm: "firecracker" })["vmm"] ?? "", /backend "vm"/);
  assert.ok(issuesOf({ template: "t", backend: "vm", vmm: "xen" })["vmm"]);
});

test("identity: a VM's fixed MAC and CID, checked by their paths, refused for containers", () => {
  assert.deepEqual(parseSpec({ template: "t", backend: "vm", identity: { mac: "52:54:00:12:34:56", cid: 7 } }).identity, { mac: "52:54:00:12:34:56", cid: 7 });
  assert.deepEqual(parseSpec({ template: "t", backend: "vm", identity: { cid: 3 } }).identity, { cid: 3 });
  assert.equal("identity" in parseSpec({ template: "t", backend: "vm", identity: {} }), false, "an empty identity fixes nothing");
  assert.match(issuesOf({ template: "t", identity: { cid: 7 } })["identity"] ?? "", /needs backend "vm", not "container"/);
  assert.match(issuesOf({ template: "t", backend: "vm", identity: { mac: "01:00:5e:00:00:01" } })["identity.mac"] ?? "", /unicast/);
  assert.match(issuesOf({ template: "t", backend: "vm", identity: { mac: "52:54:00:12:34:5G" } })["identity.mac"] ?? "", /unicast/);
  assert.match(issuesOf({ template: "t", backend: "vm", identity: { cid: 2 } })["identity.cid"] ?? "", /at least 3/);
  assert.match(issuesOf({ template: "t", backend: "vm", identity: { cid: 2 ** 32 - 1 } })["identity.cid"] ?? "", /below 2\^32-1/);
  assert.match(issuesOf({ template: "t", backend: "vm", identity: { cid: 7.5 } })["identity.cid"] ?? "", /integer/);
  assert.match(issuesOf({ template: "t", backend: "vm", identity: { tap: "x" } })["identity"] ?? "", /unknown field/);
});

test("a value of the wrong type is named as such, not as missing", () => {
  assert.equal(issuesOf({ template: "t", resources: { pids: 8.5 } })["resources.pids"], "pids must be an integer");
  assert.match(issuesOf({ template: "t", resources: { pids: "x" } })["resources.pids"] ?? "", /expected number, received string/);
  assert.equal(issuesOf({ template: 5 })["template"]?.includes("required"), false);
});
