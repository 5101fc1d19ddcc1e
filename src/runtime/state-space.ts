import fs from "node:fs";
import path from "node:path";
import { StorageFullError } from "../core/errors.js";
import type { Db } from "./db.js";

/**
 * 4 MiB kept aside in `<state>/reserve` so that what has already happened
 * on the host can still be recorded when the state filesystem fills: a
 * stop whose processes have ended, a removal whose files are gone. Before,
 * a full disk had `stop` answer 500 after the stop (SQLITE_FULL while
 * recording the event, issue 18). One record is a few pages of WAL; 4 MiB
 * holds hundreds. Creates do not use it: they fail with 507 first.
 */
const RESERVE_BYTES = 4 * 1024 * 1024;

/** Free space a create needs on the state filesystem: its directory, bundle, rows and a persistent one's first writes. */
const MIN_FREE_FOR_CREATE = 16 * 1024 * 1024;

export class SpaceReserve {
  private readonly file: string;
  constructor(stateDir: string) {
    this.file = path.join(stateDir, "reserve");
  }

  /** Makes the reserve again if it was spent (the daemon's housekeeping; every open). Quietly not when there is no room. */
  ensure(): void {
    if (fs.existsSync(this.file)) return;
    const tmp = `${this.file}.${process.pid}`;
    try {
      fs.writeFileSync(tmp, Buffer.alloc(RESERVE_BYTES));
      fs.renameSync(tmp, this.file);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }

  /**
   * Refuses a new sandbox (507) unless the state filesystem has room for
   * it to start (MIN_FREE_FOR_CREATE) beside the reserve: a create on a
   * nearly full disk would otherwise spend the reserve meant for records.
   */
  checkRoom(): void {
    const st = fs.statfsSync(path.dirname(this.file));
    const free = st.bavail * st.bsize;
    const need = MIN_FREE_FOR_CREATE + (fs.existsSync(this.file) ? 0 : RESERVE_BYTES);
    if (free < need) throw new StorageFullError(`the state directory's filesystem is full (${Math.floor(free / 1024 / 1024)} MiB free, a new sandbox needs ${need / 1024 / 1024} MiB)`);
  }

  /**
   * Runs `fn` (the database writes recording something already done) in
   * one transaction: all of it or none. When the disk is full the reserve
   * is given up and it runs again; still full is a 507.
   */
  record<T>(db: Db, fn: () => T): T {
    const tx = db.transaction(fn);
    try {
      return tx();
    } catch (e) {
      if (!isFull(e)) throw e;
      fs.rmSync(this.file, { force: true });
      try {
        return tx();
      } catch (again) {
        if (isFull(again)) throw new StorageFullError("the state directory's filesystem is full", { cause: again });
        throw again;
      }
    }
  }
}

/** SQLite's or the kernel's word for a full disk. */
export function isFull(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT";
}
