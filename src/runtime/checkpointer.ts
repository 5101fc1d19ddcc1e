import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

/**
 * Copies the state database's write-ahead log back into the database, in
 * a worker thread with a connection of its own, so that no request of a
 * long-lived process waits for it.
 *
 * SQLite's automatic checkpoint runs inside whichever commit crosses 1,000
 * pages of log (about 2 ms with its fsyncs), and the first commit after a
 * complete checkpoint starts the log over, which with synchronous=NORMAL
 * syncs the new log header (about 0.7 ms here): a create after a quiet
 * second paid that. Here, once a second when another connection has
 * committed (PRAGMA data_version), the worker checkpoints (PASSIVE: it
 * never waits for or blocks a writer) and, when the whole log was copied,
 * commits a one-page write of its own (page 1, unchanged), which starts the
 * log over and pays that sync in this thread. Idle, it does nothing.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private stopped = false;

  /**
   * `onFailure` runs (once) if the worker stops by itself (it could not
   * open the database, say): the caller then lets its own connection
   * checkpoint again, as SQLite does by default.
   */
  constructor(file: string, opts: { intervalMs?: number; onFailure?: (e?: Error) => void } = {}) {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { file, intervalMs: opts.intervalMs ?? 1000 } satisfies CheckpointerData });
    this.worker.unref();
    const failed = (e?: unknown) => {
      if (this.stopped) return;
      this.stopped = true;
      // An SqliteError arrives from the worker as a plain { code } object.
      const c = e as { message?: unknown; code?: unknown } | undefined;
      opts.onFailure?.(e === undefined || e instanceof Error ? e : new Error(String(c?.message ?? c?.code ?? e)));
    };
    this.worker.on("error", failed);
    this.worker.on("exit", () => failed());
  }

  /** Stops the worker; resolves once its connection is closed. */
  close(): Promise<void> {
    this.stopped = true;
    this.worker.postMessage("close");
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => void this.worker.terminate().finally(resolve), 2000);
      this.worker.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

interface CheckpointerData {
  readonly file: string;
  readonly intervalMs: number;
}

/** One pass: returns the data_version it saw. */
export function checkpointOnce(db: Database.Database, seen: number | undefined): number {
  const version = db.pragma("data_version", { simple: true }) as number;
  if (version === seen) return version;
  const [r] = db.pragma("wal_checkpoint(PASSIVE)") as { busy: number; log: number; checkpointed: number }[];
  // Not after a one-page log: that may be another checkpointer's own
  // restart (two long-lived processes on one database would otherwise
  // trade restarts every second while idle).
  if (r && r.busy === 0 && r.log > 1 && r.checkpointed === r.log) {
    // Rewrites page 1 with what it holds (read and written under the write
    // lock, so a migration in another process cannot slip in between): the
    // log starts over here.
    db.transaction(() => {
      const v = db.pragma("user_version", { simple: true }) as number;
      db.pragma(`user_version = ${v}`);
    }).immediate();
  }
  return version;
}

if (!isMainThread && parentPort && (workerData as Partial<CheckpointerData> | undefined)?.file) {
  const { file, intervalMs } = workerData as CheckpointerData;
  const db = new Database(file, { fileMustExist: true });
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 1000");
  db.pragma("wal_autocheckpoint = 0");
  let seen: number | undefined;
  const timer = setInterval(() => {
    try {
      seen = checkpointOnce(db, seen);
    } catch {
      // Busy, or a schema change under way: the next tick tries again.
    }
  }, intervalMs);
  parentPort.on("message", (m) => {
    if (m !== "close") return;
    clearInterval(timer);
    db.close();
    parentPort!.close();
  });
}
