/**
 * Each sandbox's own host uid range (issue 18, part 7). A process that
 * escapes one sandbox is then a uid no other sandbox's files or processes
 * have: before, every sandbox was root at the one range `uidBase`, so an
 * escape owned every other sandbox's writable layer.
 *
 * A sandbox's row holds its slot (sandboxes.uid_slot, unique); its range
 * is UID_RANGE ids from `rangeBase(uidBase, slot)`. The slot is taken in
 * the transaction that inserts the row, so it is freed when the row goes
 * (destroy, reconcile of a sandbox that is gone) and kept as long as the
 * row is: across stop/start, daemon restarts, pool claims and promote.
 * Rows from before slots existed have none and keep the shared range
 * (`uidBase`) until destroyed.
 *
 * Below the first slot: the store's range (uidBase: what the shared layers
 * are owned by, id-mapped for each sandbox by corral-launch) and the block
 * older VMs' QEMU processes ran as (uidBase + 65536 + 20 bits, vm-backend).
 */
import type { Db } from "./db.js";
import { stmt } from "./db.js";
import { HostError } from "../core/errors.js";

export const UID_RANGE = 65536;

/** Ranges below the first slot: the store's, and the 16 of the older VM QEMU uids. */
export const RESERVED_RANGES = 17;

/**
 * Slots per state dir. With the default uidBase (0x60000000) the last
 * range ends at 0x6fffffff, the end of the block systemd leaves to
 * containers (524288-1879048191): 4096 ranges, less the reserved.
 */
export const UID_SLOTS = 4096 - RESERVED_RANGES;

/** The host uid that is root inside the sandbox of `slot`. */
export function rangeBase(uidBase: number, slot: number): number {
  return uidBase + (RESERVED_RANGES + slot) * UID_RANGE;
}

/**
 * Slots a state dir claims from the host at a time (host-claims.ts): 255
 * blocks over the 4079 slots, so that many state dirs with sandboxes fit
 * on one host at one base; a state dir keeps its blocks until it is gone.
 */
export const SLOT_BLOCK = 16;

/**
 * The slots a state dir may hand out on this host (host-claims.ts): the
 * blocks of SLOT_BLOCK it holds, and one more claimed when they are full
 * (undefined: every block is another state dir's).
 */
export interface SlotBlocks {
  blocks(): readonly number[];
  claimBlock(): number | undefined;
}

/**
 * The lowest slot no row holds, within the caller's transaction: among
 * `within`'s blocks when given (a state dir on a real host), claiming
 * another block when they are full; HostError when all are taken.
 */
export function freeSlot(db: Db, within?: SlotBlocks): number {
  if (within) return freeSlotWithin(db, within);
  const row = stmt(
    db,
    `SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM sandboxes WHERE uid_slot = 0) THEN 0
       ELSE (SELECT min(a.uid_slot) + 1 FROM sandboxes a WHERE a.uid_slot IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM sandboxes b WHERE b.uid_slot = a.uid_slot + 1)) END AS slot`,
  ).get() as { slot: number };
  if (row.slot >= UID_SLOTS) throw new HostError(`every host uid range of this state dir is in use (${UID_SLOTS} sandboxes)`);
  return row.slot;
}

function freeSlotWithin(db: Db, within: SlotBlocks): number {
  const used = new Set(stmt(db, "SELECT uid_slot FROM sandboxes WHERE uid_slot IS NOT NULL").pluck().all() as number[]);
  const firstFree = (b: number) => {
    for (let s = b * SLOT_BLOCK; s < Math.min((b + 1) * SLOT_BLOCK, UID_SLOTS); s++) if (!used.has(s)) return s;
    return undefined;
  };
  for (const b of within.blocks()) {
    const s = firstFree(b);
    if (s !== undefined) return s;
  }
  for (;;) {
    const b = within.claimBlock();
    if (b === undefined) throw new HostError(`every host uid range this state dir may use is in use (its own sandboxes and other state dirs' on this host hold all ${UID_SLOTS})`);
    const s = firstFree(b);
    if (s !== undefined) return s;
  }
}
