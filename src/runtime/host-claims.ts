import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { ConflictError } from "../core/errors.js";

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
 *
 * A claim's owner is a state dir's real path. An owner is gone when its
 * `cgroup-parent` record no longer names the parent (the state dir was
 * deleted, or given another): its claim is then taken over or dropped,
 * so nothing needs releasing when a state dir is removed.
 */
export class HostClaims {
  private constructor(private readonly db: Database.Database) {}

  static open(dir: string = process.env["CORRAL_HOST_DIR"] || DEFAULT_HOST_DIR): HostClaims {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const db = new Database(path.join(dir, "claims.db"), { timeout: 5000 });
    try {
      db.exec(`
        CREATE TABLE IF NOT EXISTS cgroup_parents (parent TEXT PRIMARY KEY, state_dir TEXT NOT NULL, claimed_at TEXT NOT NULL);
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

  /** Drops the claims of state dirs that are gone (cheap: a stat per claim), so the file does not grow with every temporary state dir. */
  forgetGone(): void {
    this.db.transaction(() => {
      const rows = this.db.prepare("SELECT parent, state_dir FROM cgroup_parents").all() as { parent: string; state_dir: string }[];
      for (const r of rows) if (!ownsCgroupParent(r.state_dir, r.parent)) this.db.prepare("DELETE FROM cgroup_parents WHERE parent = ?").run(r.parent);
    }).immediate();
  }

  close(): void {
    this.db.close();
  }
}

/** Whether a state dir still exists and still records `parent` as its cgroup parent. */
function ownsCgroupParent(stateDir: string, parent: string): boolean {
  try {
    return fs.readFileSync(path.join(stateDir, "cgroup-parent"), "utf8").trim() === parent;
  } catch {
    return false;
  }
}
