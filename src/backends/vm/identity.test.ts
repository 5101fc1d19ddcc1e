import { test } from "node:test";
import assert from "node:assert/strict";
import { assignIdentities, identityOf, vmIdentity } from "./identity.js";

test("identity is a pure function of the name", () => {
  const a = vmIdentity("web-1");
  assert.deepEqual(vmIdentity("web-1"), a);
  assert.notDeepEqual(vmIdentity("web-2"), a);
  assert.match(a.mac, /^02(:[0-9a-f]{2}){5}$/);
  assert.ok(a.cid >= 100 && a.cid < 100 + 2 ** 24);
  assert.ok(a.tap.length <= 15 && /^cr[0-9a-f]+$/.test(a.tap));
});

test("known values stay fixed (the NixOS module must compute the same)", () => {
  // sha256("web-1") = c4719afa...: pinned so a change to the rule is noticed.
  const h = "c4719afa";
  const id = vmIdentity("web-1");
  const expectedCid = 100 + parseInt(h.slice(0, 6), 16);
  assert.equal(id.mac.slice(0, 14), `02:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}`);
  assert.equal(id.cid, expectedCid);
});

test("collisions are resolved deterministically, whatever the order", () => {
  const names = Array.from({ length: 3000 }, (_, i) => `vm-${i}`);
  const a = assignIdentities(names);
  const b = assignIdentities([...names].reverse());
  assert.deepEqual([...a.entries()].sort(), [...b.entries()].sort());
  const ids = [...a.values()];
  assert.equal(new Set(ids.map((x) => x.mac)).size, names.length);
  assert.equal(new Set(ids.map((x) => x.cid)).size, names.length);
  assert.equal(new Set(ids.map((x) => x.tap)).size, names.length);
});

test("a real collision steps the later name to the next salt", () => {
  // Birthday search for two names whose CIDs (24 bits) collide.
  const seen = new Map<number, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; !pair; i++) {
    const name = `n-${i}`;
    const other = seen.get(vmIdentity(name).cid);
    if (other) pair = [other, name];
    else seen.set(vmIdentity(name).cid, name);
  }
  const [first, second] = [...pair].sort() as [string, string];
  const ids = assignIdentities(pair);
  assert.deepEqual(ids.get(first), vmIdentity(first));
  assert.deepEqual(ids.get(second), vmIdentity(second, 1));
  assert.notEqual(ids.get(first)!.cid, ids.get(second)!.cid);
  assert.equal(assignIdentities(["x", "x"]).size, 1);
});

test("identityOf: the name's, with a fixed MAC or CID in place of the derived one", () => {
  const d = vmIdentity("web-1");
  assert.deepEqual(identityOf("web-1", undefined), d);
  assert.deepEqual(identityOf("web-1", { cid: 9 }), { ...d, cid: 9 });
  assert.deepEqual(identityOf("web-1", { mac: "52:54:00:00:00:01" }), { ...d, mac: "52:54:00:00:00:01" });
});
