import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { ConflictError } from "../core/errors.js";

/** What the daemon serving a state dir says of itself (`<state>/daemon.json`, root only). */
export interface DaemonRecord {
  readonly pid: number;
  readonly url: string;
  readonly since: string;
}

const LOCK_FILE = "daemon.lock";
const RECORD_FILE = "daemon.json";

/**
 * The state dir's daemon lock: an SQLite file in rollback-journal mode
 * held in an EXCLUSIVE transaction for the daemon's lifetime. SQLite takes
 * it with fcntl locks, which the kernel drops when the process dies
 * (SIGKILL included), so there is no stale lock to guess about, and two
 * daemons starting at once cannot both win (a pid file would need a
 * takeover step that races). Opening the same file again in the same
 * process sees the lock too (SQLite tracks locks per inode).
 */
export class StateDirLock {
  private constructor(
    private readonly db: Database.Database,
    private readonly recordFile: string,
  ) {}

  /** Takes the lock or throws ConflictError naming the daemon that holds it. */
  static acquire(stateDir: string): StateDirLock {
    // A probe (daemonServes) holds it for microseconds: wait that out, not a daemon.
    const db = open(stateDir, 250);
    try {
      db.exec("BEGIN EXCLUSIVE");
    } catch (e) {
      db.close();
      if ((e as { code?: string }).code !== "SQLITE_BUSY") throw e;
      const who = readDaemonRecord(stateDir);
      throw new ConflictError(`state dir ${stateDir} is already served by a corral daemon${who ? ` (pid ${who.pid}, ${who.url})` : ""}`);
    }
    return new StateDirLock(db, path.join(stateDir, RECORD_FILE));
  }

  /** Says who holds the lock, for `corral` commands that look for a daemon. */
  record(r: DaemonRecord): void {
    const tmp = `${this.recordFile}.${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(r), { mode: 0o600 });
    fs.renameSync(tmp, this.recordFile);
  }

  release(): void {
    fs.rmSync(this.recordFile, { force: true });
    try {
      this.db.exec("ROLLBACK");
    } finally {
      this.db.close();
    }
  }
}

function open(stateDir: string, timeoutMs = 0): Database.Database {
  // Rollback journal (SQLite's default), never WAL: a WAL reader would not wait for the lock.
  return new Database(path.join(stateDir, LOCK_FILE), { timeout: timeoutMs });
}

/** Whether a daemon holds the state dir's lock now (a probe: it may start or stop right after). */
export function daemonServes(stateDir: string): boolean {
  if (!fs.existsSync(path.join(stateDir, LOCK_FILE))) return false;
  const db = open(stateDir);
  try {
    db.exec("BEGIN EXCLUSIVE");
    db.exec("ROLLBACK");
    return false;
  } catch (e) {
    if ((e as { code?: string }).code === "SQLITE_BUSY") return true;
    throw e;
  } finally {
    db.close();
  }
}

/** The running daemon's record, or undefined (none, or one that has not written it yet). */
export function readDaemonRecord(stateDir: string): DaemonRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(stateDir, RECORD_FILE), "utf8")) as DaemonRecord;
  } catch {
    return undefined;
  }
}
