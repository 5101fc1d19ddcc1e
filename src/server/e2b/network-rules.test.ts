import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSpec } from "../../core/sandbox-spec.js";
import { ALL_TRAFFIC, e2bNetworkOf, egressFor, readCreateNetwork } from "./network-rules.js";

test("E2B's internet access and egress lists as corral's network", () => {
  assert.equal(egressFor(true, undefined), "nat");
  assert.equal(egressFor(false, undefined), "none");
  assert.deepEqual(egressFor(true, { allowOut: ["a.test"], denyOut: [ALL_TRAFFIC] }), { mode: "nat", egress: { allow: ["a.test"], deny: [] } });
  // No internet access is denyOut of all traffic: allowOut is then all there is.
  assert.deepEqual(egressFor(false, { allowOut: ["a.test"] }), { mode: "nat", egress: { allow: ["a.test"], deny: [] } });
  assert.deepEqual(egressFor(true, { denyOut: [ALL_TRAFFIC] }), { mode: "nat", egress: { allow: [], deny: [] } });
  assert.deepEqual(egressFor(true, { denyOut: ["10.0.0.0/8"] }), { mode: "nat", egress: { deny: ["10.0.0.0/8"] } });
  // allowOut with nothing denied changes nothing, as in E2B.
  assert.equal(egressFor(true, { allowOut: ["a.test"] }), "nat");
  assert.throws(() => egressFor(true, { allowOut: ["10.1.2.3"], denyOut: ["10.0.0.0/8"] }), { code: "e2b_unsupported" });
  // What comes out is a spec corral accepts, and a bad rule is named by its path.
  parseSpec({ template: "t", network: egressFor(true, { allowOut: ["*.pypi.org", "198.18.0.0/15"], denyOut: [ALL_TRAFFIC] }) });
  assert.throws(() => parseSpec({ template: "t", network: egressFor(true, { denyOut: ["not a rule"] }) }), /network\.egress\.deny\.0/);
});

test("a create's network: what corral cannot do is refused by name, lists checked", () => {
  assert.equal(readCreateNetwork(undefined), undefined);
  assert.equal(readCreateNetwork({ allowPublicTraffic: false }), undefined);
  assert.deepEqual(readCreateNetwork({ denyOut: [ALL_TRAFFIC], allowOut: ["a.test"] }), { denyOut: [ALL_TRAFFIC], allowOut: ["a.test"] });
  for (const [n, what] of [
    [{ allowPublicTraffic: true }, "allowPublicTraffic"],
    [{ maskRequestHost: "x" }, "maskRequestHost"],
    [{ rules: { "a.test": [{}] } }, "rules"],
    [{ egressProxy: { address: "p:1080" } }, "egressProxy"],
    [{ httpsPorts: [443] }, "httpsPorts"],
  ] as const) {
    assert.throws(() => readCreateNetwork(n), (e: Error & { code?: string }) => e.code === "e2b_unsupported" && e.message.includes(what), what);
  }
  assert.throws(() => readCreateNetwork({ allowOut: "a.test" }), /network\.allowOut must be a list of strings/);
  assert.throws(() => readCreateNetwork([]), /network must be an object/);
});

test("a sandbox's network in E2B's detail", () => {
  assert.equal(e2bNetworkOf("none"), undefined);
  assert.deepEqual(e2bNetworkOf("nat"), { allowOut: [], denyOut: [] });
  const only = parseSpec({ template: "t", network: { egress: { allow: ["a.test"] } } }).network;
  assert.deepEqual(e2bNetworkOf(only), { allowOut: ["a.test"], denyOut: [ALL_TRAFFIC] });
  const deny = parseSpec({ template: "t", network: { egress: { deny: ["10.0.0.0/8"] } } }).network;
  assert.deepEqual(e2bNetworkOf(deny), { allowOut: [], denyOut: ["10.0.0.0/8"] });
});
