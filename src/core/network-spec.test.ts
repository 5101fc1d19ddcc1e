import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { InvalidSpecError } from "./errors.js";
import { egressRuleProblem, networkMode, networkPolicy, parseEgressRule } from "./network-spec.js";
import { parseSpec } from "./sandbox-spec.js";

const issues = (network: unknown) => {
  try {
    parseSpec({ template: "busybox", network });
  } catch (e) {
    assert.ok(e instanceof InvalidSpecError);
    return e.issues;
  }
  return [];
};

describe("network spec", () => {
  it("keeps none the default and one word for the simple cases", () => {
    assert.equal(parseSpec({ template: "busybox" }).network, "none");
    assert.equal(parseSpec({ template: "busybox", network: "nat" }).network, "nat");
    assert.equal(networkMode("nat"), "nat");
    assert.equal(networkMode(undefined), "none");
  });

  it("fills in the object form", () => {
    const n = parseSpec({ template: "busybox", network: { egress: { allow: ["*.pypi.org", "10.0.0.0/8"] }, ports: [8080, { port: 3000, public: true }] } }).network;
    assert.deepEqual(networkPolicy(n), {
      mode: "nat",
      allow: ["*.pypi.org", "10.0.0.0/8"],
      deny: [],
      networks: [],
      ports: [
        { port: 8080, public: false },
        { port: 3000, public: true },
      ],
    });
  });

  it("refuses bad rules with the field path", () => {
    assert.deepEqual(
      issues({ egress: { allow: ["ok.example", "10.0.0.0/33"], deny: ["bad name!"] } }).map((i) => i.path),
      ["network.egress.allow.1", "network.egress.deny.0"],
    );
    assert.match(issues({ egress: { allow: ["2001:db8::/32"] } })[0]!.message, /IPv4 only/);
    assert.deepEqual(issues({ ports: [0] }).map((i) => i.path), ["network.ports.0"]);
    assert.deepEqual(issues({ ports: [80, { port: 80 }] }).map((i) => i.path), ["network.ports.1"]);
    assert.deepEqual(issues({ mode: "none", networks: ["a"] }).map((i) => i.path), ["network.networks"]);
    assert.deepEqual(issues({ networks: ["Bad_Name"] }).map((i) => i.path), ["network.networks.0"]);
    assert.deepEqual(issues({ egres: {} }).map((i) => i.path), ["network"]);
    assert.match(issues("bridge")[0]!.message, /none|nat/);
  });

  it("reads rules", () => {
    assert.equal(egressRuleProblem("example.com"), undefined);
    assert.equal(egressRuleProblem("*.example.com"), undefined);
    assert.equal(egressRuleProblem("1.2.3.4"), undefined);
    assert.notEqual(egressRuleProblem("1.2.3.4/8/1"), undefined);
    assert.notEqual(egressRuleProblem("*.*.example.com"), undefined);
    assert.notEqual(egressRuleProblem("999.1.1.1"), undefined);
    assert.deepEqual(parseEgressRule("1.2.3.4"), { kind: "cidr", cidr: "1.2.3.4/32" });
    assert.deepEqual(parseEgressRule("*.Example.COM"), { kind: "name", name: "example.com", wildcard: true });
  });
});
