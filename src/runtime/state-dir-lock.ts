import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { ConflictError } from "../core/errors.js";

/** Where a state dir is when none is given: $CORRAL_STATE_DIR, else this. */
export const DEFAULT_STATE_DIR = "/var/lib/corral";

/** What the daemon serving a state dir says of itself (`<state>/daemon.json`, root only). */
export interface DaemonRecord {
  readonly pid: number;
  readonly url: string;
  readonly since: string;
}

const LOCK_FILE = "daemon.lock";
const RECORD_FILE = "daemon.json";
/**
 * The daemon's operator credential (`<state>/daemon.key`, 0600, the
 * daemon's user): made at each start, held only in the daemon's memory
 * (Tenants.newOperatorKey) and here, so only who can read the state dir
 * can use it. A crash leaves the file, but its key died with the process;
 * the next daemon removes it on taking the lock and writes its own.
 */
const CREDENTIAL_FILE = "daemon.key";

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
    private readonly stateDir: string,
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
    // What a daemon that died without release() left: a record naming it and a key nobody accepts.
    for (const f of [RECORD_FILE, CREDENTIAL_FILE]) fs.rmSync(path.join(stateDir, f), { force: true });
    return new StateDirLock(db, stateDir);
  }

  /**
   * Says who holds the lock and with which credential a `corral` command
   * on this state dir acts through it (the key first: a CLI that sees the
   * record finds the key).
   */
  record(r: DaemonRecord, credential: string): void {
    writePrivate(path.join(this.stateDir, CREDENTIAL_FILE), credential);
    writePrivate(path.join(this.stateDir, RECORD_FILE), JSON.stringify(r));
  }

  release(): void {
    for (const f of [RECORD_FILE, CREDENTIAL_FILE]) fs.rmSync(path.join(this.stateDir, f), { force: true });
    try {
      this.db.exec("ROLLBACK");
    } finally {
      this.db.close();
    }
  }
}

/** A new file of mode 0600 (whatever the umask), put in place whole. */
function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}`;
  fs.rmSync(tmp, { force: true });
  fs.writeFileSync(tmp, text, { mode: 0o600, flag: "wx" });
  fs.renameSync(tmp, file);
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

/** The daemon serving a state dir, as a `corral` command acts through it. */
export interface ServingDaemon extends DaemonRecord {
  /** The operator credential (daemon.key). */
  readonly key: string;
}

/**
 * The daemon serving `stateDir` with its credential, or undefined when
 * none does. A daemon that holds the lock but has not said where it
 * listens yet (it is starting: reconcile, declared state) is waited for,
 * up to `waitMs`; one that has not by then, or whose credential this
 * process cannot read, is a ConflictError naming it: the caller must not
 * act on the state dir beside it.
 */
export async function servingDaemon(stateDir: string, waitMs = 30_000): Promise<ServingDaemon | undefined> {
  const until = Date.now() + waitMs;
  for (;;) {
    let serves: boolean;
    try {
      serves = daemonServes(stateDir);
    } catch {
      // Not ours to probe (another user's state dir): opening it says why, as before.
      return undefined;
    }
    if (!serves) return undefined;
    const r = readDaemonRecord(stateDir);
    if (r) {
      let key: string;
      try {
        key = fs.readFileSync(path.join(stateDir, CREDENTIAL_FILE), "utf8").trim();
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code ?? String(e);
        throw new ConflictError(`state dir ${stateDir} is served by a corral daemon (pid ${r.pid}, ${r.url}) whose credential ${CREDENTIAL_FILE} is not readable here (${why}): run this as its user, or with --api-url and --api-key`);
      }
      return { ...r, key };
    }
    if (Date.now() >= until) throw new ConflictError(`state dir ${stateDir} is held by a corral daemon that has not started serving within ${waitMs / 1000} s`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
