import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { ConflictError } from "../core/errors.js";
import { rangeBase, SLOT_BLOCK, UID_SLOTS, type SlotBlocks } from "./uid-ranges.js";

/**
 * Where the host-wide claims live: $CORRAL_HOST_DIR, else this. Outside
 * every state dir (the default one included), since it is about all of
 * them; on disk, not /run, because what it guards (a stopped persistent
 * sandbox's uid range) outlives a reboot.
 */
export const DEFAULT_HOST_DIR = "/var/lib/corral-host";

/**
 * What the state dirs of one host must not share (issue 18 part 3),
 * recorded in one small SQLite file every state dir opening on the host
 * writes its claims to, in IMMEDIATE transactions (two opening at once
 * are serialised by SQLite's lock; a busy wait of up to 5 s):
 *
 * - a cgroup parent: reconcile removes what is under its own parent that
 *   its database does not know, so two state dirs given one parent
 *   (CORRAL_CGROUP_PARENT) destroyed each other's sandboxes;
 * - host uids: each sandbox's range (uid-ranges.ts) is a slot of its
 *   state dir, and two state dirs with the same uid base handed out the
 *   same ranges, so an escape from one owned the other's sandboxes. A
 *   state dir now takes its slots from blocks of SLOT_BLOCK it claims
 *   here, as uid intervals: no block overlaps another live state dir's
 *   blocks or its store range (`uidBase`, the ranges below the first
 *   slot), whatever the bases; store ranges may overlap each other (a
 *   sandbox is never root there).
 *
 * A claim's owner is a state dir's real path. An owner of a cgroup parent
 * is gone when its `cgroup-parent` record no longer names the parent (the
 * state dir was deleted, or given another), an owner of uids when it has
 * no database any more: its claims are then taken over or dropped, so
 * nothing needs releasing when a state dir is removed.
 */
export class HostClaims {
  private constructor(private readonly db: Database.Database) {}

  static open(dir: string = process.env["CORRAL_HOST_DIR"] || DEFAULT_HOST_DIR): HostClaims {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const db = new Database(path.join(dir, "claims.db"), { timeout: 5000 });
    try {
      db.exec(`
        CREATE TABLE IF NOT EXISTS cgroup_parents (parent TEXT PRIMARY KEY, state_dir TEXT NOT NULL, claimed_at TEXT NOT NULL);
        -- Host uids [first, end): a state dir's store range (block -1) or a block of its slots.
        CREATE TABLE IF NOT EXISTS uid_claims (first INTEGER NOT NULL, end INTEGER NOT NULL, state_dir TEXT NOT NULL, base INTEGER NOT NULL, block INTEGER NOT NULL);
        CREATE UNIQUE INDEX IF NOT EXISTS uid_claims_block ON uid_claims (state_dir, base, block);
      `);
    } catch (e) {
      db.close();
      throw e;
    }
    return new HostClaims(db);
  }

  /**
   * Records `stateDir` (a real path) as the owner of cgroup parent
   * `parent`, or throws ConflictError naming the state dir that owns it.
   * `record` (the state dir's own `cgroup-parent` file, what makes it the
   * owner to the next claimant) runs inside the claim's transaction.
   */
  claimCgroupParent(parent: string, stateDir: string, record: () => void = () => {}): void {
    this.db.transaction(() => {
      const row = this.db.prepare("SELECT state_dir FROM cgroup_parents WHERE parent = ?").get(parent) as { state_dir: string } | undefined;
      if (row && row.state_dir !== stateDir && ownsCgroupParent(row.state_dir, parent)) {
        throw new ConflictError(
          `cgroup parent ${parent} belongs to the state dir ${row.state_dir}: give ${stateDir} another (CORRAL_CGROUP_PARENT) or none (it then derives its own)`,
        );
      }
      this.db.prepare("INSERT OR REPLACE INTO cgroup_parents (parent, state_dir, claimed_at) VALUES (?, ?, ?)").run(parent, stateDir, new Date().toISOString());
      record();
    }).immediate();
  }

  /**
   * Claims the store range of `stateDir` at `uidBase` (dropping its claims
   * at any other base), then the blocks its existing sandboxes' slots are
   * in where no other state dir has them (slots handed out before this
   * registry may be shared; nothing can move them). ConflictError when
   * the store range overlaps another live state dir's sandbox uids.
   */
  claimUids(stateDir: string, uidBase: number, slotsInUse: readonly number[]): void {
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM uid_claims WHERE state_dir = ? AND base != ?").run(stateDir, uidBase);
      const [first, end] = [uidBase, rangeBase(uidBase, 0)];
      const other = this.others(stateDir, first, end).find((c) => c.block >= 0);
      if (other) {
        throw new ConflictError(`uid base ${uidBase} of ${stateDir} overlaps the sandbox uids of the state dir ${other.state_dir} (${other.first}-${other.end - 1}): give it another base`);
      }
      this.db.prepare("INSERT OR IGNORE INTO uid_claims (first, end, state_dir, base, block) VALUES (?, ?, ?, ?, -1)").run(first, end, stateDir, uidBase);
      const owned = new Set(this.blocksOf(stateDir, uidBase));
      for (const b of new Set(slotsInUse.map((s) => Math.floor(s / SLOT_BLOCK)))) if (!owned.has(b)) this.tryBlock(stateDir, uidBase, b);
    }).immediate();
  }

  /** The slot blocks `stateDir` holds at `uidBase`, for freeSlot (uid-ranges.ts). */
  slotBlocks(stateDir: string, uidBase: number): SlotBlocks {
    return {
      blocks: () => this.blocksOf(stateDir, uidBase),
      claimBlock: () =>
        this.db.transaction(() => {
          const owned = new Set(this.blocksOf(stateDir, uidBase));
          for (let b = 0; b * SLOT_BLOCK < UID_SLOTS; b++) if (!owned.has(b) && this.tryBlock(stateDir, uidBase, b)) return b;
          return undefined;
        }).immediate(),
    };
  }

  private blocksOf(stateDir: string, uidBase: number): number[] {
    return this.db.prepare("SELECT block FROM uid_claims WHERE state_dir = ? AND base = ? AND block >= 0 ORDER BY block").pluck().all(stateDir, uidBase) as number[];
  }

  /** Claims block `b` unless it is this state dir's already or overlaps another live state dir's uids; whether it is this state dir's now. */
  private tryBlock(stateDir: string, uidBase: number, b: number): boolean {
    const first = rangeBase(uidBase, b * SLOT_BLOCK);
    const end = rangeBase(uidBase, Math.min((b + 1) * SLOT_BLOCK, UID_SLOTS));
    if (this.others(stateDir, first, end).length) return false;
    this.db.prepare("INSERT OR IGNORE INTO uid_claims (first, end, state_dir, base, block) VALUES (?, ?, ?, ?, ?)").run(first, end, stateDir, uidBase, b);
    return true;
  }

  /** Other live state dirs' claims overlapping [first, end); those of state dirs that are gone are dropped on the way. */
  private others(stateDir: string, first: number, end: number): { state_dir: string; first: number; end: number; block: number }[] {
    const rows = this.db.prepare("SELECT state_dir, first, end, block FROM uid_claims WHERE state_dir != ? AND first < ? AND end > ?").all(stateDir, end, first) as {
      state_dir: string;
      first: number;
      end: number;
      block: number;
    }[];
    const live = rows.filter((r) => hasDatabase(r.state_dir));
    for (const gone of new Set(rows.filter((r) => !live.includes(r)).map((r) => r.state_dir))) this.db.prepare("DELETE FROM uid_claims WHERE state_dir = ?").run(gone);
    return live;
  }

  /** Drops the claims of state dirs that are gone (cheap: a stat per claim), so the file does not grow with every temporary state dir. */
  forgetGone(): void {
    this.db.transaction(() => {
      const rows = this.db.prepare("SELECT parent, state_dir FROM cgroup_parents").all() as { parent: string; state_dir: string }[];
      for (const r of rows) if (!ownsCgroupParent(r.state_dir, r.parent)) this.db.prepare("DELETE FROM cgroup_parents WHERE parent = ?").run(r.parent);
      const dirs = this.db.prepare("SELECT DISTINCT state_dir FROM uid_claims").pluck().all() as string[];
      for (const d of dirs) if (!hasDatabase(d)) this.db.prepare("DELETE FROM uid_claims WHERE state_dir = ?").run(d);
    }).immediate();
  }

  close(): void {
    this.db.close();
  }
}

/** Whether a state dir still exists (its database: a state dir being made claims uids only once it has one). */
function hasDatabase(stateDir: string): boolean {
  return fs.existsSync(path.join(stateDir, "corral.db"));
}

/** Whether a state dir still exists and still records `parent` as its cgroup parent. */
function ownsCgroupParent(stateDir: string, parent: string): boolean {
  try {
    return fs.readFileSync(path.join(stateDir, "cgroup-parent"), "utf8").trim() === parent;
  } catch {
    return false;
  }
}
