import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openDatabase } from "./db.js";
import { freeSlot, rangeBase, RESERVED_RANGES, SLOT_BLOCK, UID_RANGE, UID_SLOTS } from "./uid-ranges.js";

function withDb(fn: (db: ReturnType<typeof openDatabase>, add: (id: string, slot: number | null) => void) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-uid-"));
  const db = openDatabase(path.join(dir, "corral.db"));
  const add = (id: string, slot: number | null) =>
    db
      .prepare("INSERT INTO sandboxes (id, tenant_id, name, spec, state, created_at, creator_pid, uid_slot) VALUES (?, 'local', ?, '{}', 'running', '', 1, ?)")
      .run(id, id, slot);
  try {
    fn(db, add);
  } finally {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("ranges start past the store's and the older VM uids, and end within systemd's container block", () => {
  assert.equal(rangeBase(0x60000000, 0), 0x60000000 + RESERVED_RANGES * UID_RANGE);
  assert.equal(rangeBase(0x60000000, 1) - rangeBase(0x60000000, 0), UID_RANGE);
  assert.equal(rangeBase(0x60000000, UID_SLOTS - 1) + UID_RANGE - 1, 0x6fffffff);
});

test("takes the lowest free slot, reuses a freed one, and skips rows from before slots", () =>
  withDb((db, add) => {
    assert.equal(freeSlot(db), 0);
    add("a", 0);
    add("b", 1);
    add("legacy", null);
    add("d", 3);
    assert.equal(freeSlot(db), 2);
    add("c", 2);
    assert.equal(freeSlot(db), 4);
    db.prepare("DELETE FROM sandboxes WHERE id = 'a'").run();
    assert.equal(freeSlot(db), 0);
    // Two rows can never hold one slot.
    assert.throws(() => add("twin", 1), /UNIQUE/);
  }));

test("refuses a create when every slot is taken", () =>
  withDb((db, add) => {
    db.transaction(() => {
      for (let i = 0; i < UID_SLOTS; i++) add(`s${i}`, i);
    })();
    assert.throws(() => freeSlot(db), /every host uid range of this state dir is in use/);
  }));

test("within a state dir's blocks: their lowest free slot, then one more block claimed, then a HostError", () =>
  withDb((db, add) => {
    const held = [2];
    const claimable = [5];
    const within = { blocks: () => held, claimBlock: () => { const b = claimable.shift(); if (b !== undefined) held.push(b); return b; } };
    const first = 2 * SLOT_BLOCK;
    assert.equal(freeSlot(db, within), first);
    for (let s = first; s < first + SLOT_BLOCK; s++) add(`s${s}`, s);
    assert.equal(freeSlot(db, within), 5 * SLOT_BLOCK, "block 2 full: block 5 claimed");
    assert.deepEqual(held, [2, 5]);
    for (let s = 5 * SLOT_BLOCK; s < 6 * SLOT_BLOCK; s++) add(`s${s}`, s);
    assert.throws(() => freeSlot(db, within), { code: "host_unsupported", message: /every host uid range this state dir may use is in use/ });
  }));
