import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { HostClaims } from "./host-claims.js";
import { rangeBase, SLOT_BLOCK } from "./uid-ranges.js";

test("a cgroup parent has one owner while that state dir records it; then it passes on", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "corral-claims-"));
  try {
    const claims = HostClaims.open(path.join(tmp, "host"));
    const a = path.join(tmp, "a");
    const b = path.join(tmp, "b");
    for (const d of [a, b]) fs.mkdirSync(d);
    const record = (dir: string, parent: string) => () => fs.writeFileSync(path.join(dir, "cgroup-parent"), `${parent}\n`);
    claims.claimCgroupParent("shared", a, record(a, "shared"));
    claims.claimCgroupParent("shared", a, record(a, "shared")); // its owner again
    let recorded = false;
    assert.throws(() => claims.claimCgroupParent("shared", b, () => (recorded = true)), { code: "conflict", message: `cgroup parent shared belongs to the state dir ${a}: give ${b} another (CORRAL_CGROUP_PARENT) or none (it then derives its own)` });
    assert.equal(recorded, false, "a refused claim records nothing");
    // The owner given another parent: "shared" is free.
    fs.writeFileSync(path.join(a, "cgroup-parent"), "other\n");
    claims.claimCgroupParent("shared", b, record(b, "shared"));
    // The owner deleted: likewise, and forgetGone drops its claims.
    fs.rmSync(b, { recursive: true });
    claims.claimCgroupParent("shared", a, record(a, "shared"));
    fs.rmSync(a, { recursive: true });
    claims.forgetGone();
    claims.close();
    const db = new Database(path.join(tmp, "host", "claims.db"));
    assert.equal(db.prepare("SELECT count(*) AS n FROM cgroup_parents").pluck().get(), 0);
    db.close();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test("two state dirs at one uid base, or at overlapping ones, get disjoint uid blocks; a gone one's are taken over", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "corral-claims-"));
  try {
    const claims = HostClaims.open(path.join(tmp, "host"));
    const dirs = ["a", "b", "c"].map((n) => path.join(tmp, n));
    for (const d of dirs) {
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, "corral.db"), "");
    }
    const [a, b, c] = dirs as [string, string, string];
    const base = 0x60000000;
    const interval = (uidBase: number, blk: number) => [rangeBase(uidBase, blk * SLOT_BLOCK), rangeBase(uidBase, (blk + 1) * SLOT_BLOCK)] as const;
    claims.claimUids(a, base, []);
    claims.claimUids(a, base, []); // each open again: one claim still
    claims.claimUids(b, base, []);
    const sa = claims.slotBlocks(a, base);
    const sb = claims.slotBlocks(b, base);
    assert.equal(sa.claimBlock(), 0);
    assert.equal(sb.claimBlock(), 1, "b's first block is not a's");
    assert.equal(sa.claimBlock(), 2);
    assert.deepEqual([sa.blocks(), sb.blocks()], [[0, 2], [1]]);
    // c's base (an explicit one overlapping theirs) puts its store range on the base's block 3 and its slot 0 one range into block 4.
    const cBase = interval(base, 3)[0];
    claims.claimUids(c, cBase, []);
    const sc = claims.slotBlocks(c, cBase);
    assert.equal(sc.claimBlock(), 0);
    const disjoint = (x: readonly [number, number], y: readonly [number, number]) => x[1] <= y[0] || x[0] >= y[1];
    for (const blk of [0, 1, 2]) assert.ok(disjoint(interval(cBase, 0), interval(base, blk)), `c's block meets block ${blk}`);
    // a's next block passes over c's store range and c's block: 3, 4 and 5 at a's base.
    assert.equal(sa.claimBlock(), 6);
    assert.ok(disjoint(interval(base, 6), interval(cBase, 0)) && disjoint(interval(base, 6), [cBase, rangeBase(cBase, 0)]));
    // A base whose store range lies on another state dir's sandbox uids is refused in one line.
    assert.throws(() => claims.claimUids(c, interval(base, 1)[0], []), { code: "conflict", message: new RegExp(`overlaps the sandbox uids of the state dir ${b} .*: give it another base$`) });
    // Slots in use from before the registry: their blocks are claimed where free.
    fs.rmSync(b, { recursive: true });
    claims.claimUids(a, base, [SLOT_BLOCK * 1 + 3]);
    assert.deepEqual(sa.blocks(), [0, 1, 2, 6], "b is gone: its block is a's now");
    claims.close();
    const db = new Database(path.join(tmp, "host", "claims.db"));
    assert.equal(db.prepare("SELECT count(*) FROM uid_claims WHERE state_dir = ? AND block = -1").pluck().get(a), 1);
    db.close();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
