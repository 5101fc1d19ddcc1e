import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { SlotRecord } from "../slot-files.js";
import { nameVerdict } from "./name-policy.js";

const slot = (n: number, over: Partial<SlotRecord> = {}): SlotRecord => ({
  slot: n,
  address: `198.19.0.${n + 2}`,
  mac: "02:00:00:00:00:01",
  kind: "container",
  port: `p${n}`,
  id: `id${n}`,
  tenant: "acme",
  name: `sb${n}`,
  policy: { allow: undefined, deny: [], networks: [] },
  ...over,
});

describe("resolver name policy", () => {
  it("answers a sandbox's own name, and peers on a shared network of its tenant only", () => {
    const a = slot(0, { policy: { allow: [], deny: [], networks: ["job"] } });
    const b = slot(1, { policy: { allow: undefined, deny: [], networks: ["job"] } });
    const stranger = slot(2, { tenant: "other", name: "sb1x", policy: { allow: undefined, deny: [], networks: ["job"] } });
    const all = [a, b, stranger];
    assert.deepEqual(nameVerdict("sb0", a, all), { kind: "local", address: a.address });
    assert.deepEqual(nameVerdict("sb1", a, all), { kind: "local", address: b.address });
    assert.deepEqual(nameVerdict("sb1x", a, all), { kind: "refuse" }, "another tenant's sandbox, and a's allow list is empty");
    assert.deepEqual(nameVerdict("sb0", stranger, all), { kind: "forward", record: false }, "not a peer: asked upstream like any name");
  });

  it("lets deny win, and forwards only allowed names under an allow list, recording them", () => {
    const c = slot(0, { policy: { allow: ["pypi.org", "*.pythonhosted.org"], deny: ["evil.pypi.org", "*.bad.pythonhosted.org"], networks: [] } });
    assert.deepEqual(nameVerdict("pypi.org", c, [c]), { kind: "forward", record: true });
    assert.deepEqual(nameVerdict("files.pythonhosted.org", c, [c]), { kind: "forward", record: true });
    assert.deepEqual(nameVerdict("pythonhosted.org", c, [c]), { kind: "refuse" }, "*.domain is its subdomains");
    assert.deepEqual(nameVerdict("x.bad.pythonhosted.org", c, [c]), { kind: "refuse" });
    assert.deepEqual(nameVerdict("github.com", c, [c]), { kind: "refuse" });
    const open = slot(1, { policy: { allow: undefined, deny: ["evil.example"], networks: [] } });
    assert.deepEqual(nameVerdict("github.com", open, [open]), { kind: "forward", record: false });
    assert.deepEqual(nameVerdict("evil.example", open, [open]), { kind: "refuse" });
  });
});
