import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { pidAlive } from "./process.js";

/** A lock file whose content is not a pid (from a writer of old) counts as dead once it is this old. */
const UNREADABLE_STALE_MS = 10_000;

/**
 * Runs `fn` holding `file`: a lock file naming its holder's pid, for work
 * several corral processes may start at once (building one template,
 * setting a state dir's network up). One whose holder is dead (killed
 * mid-operation) is taken over.
 *
 * The file appears with its pid already in it (written aside, then
 * hard-linked into place), so a holder killed at any instant never
 * leaves an empty lock that nobody can judge. A dead holder's file is
 * moved aside before it is removed, and put back if it turns out to be a
 * live holder's that took over first: two waiters that both saw the dead
 * holder never both go on. The holder sweeps the aside files of
 * processes killed while they waited.
 */
export async function withPidLock<T>(file: string, fn: () => Promise<T>, o: { pollMs: number; timeoutMs: number }): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  const mine = `${file}.${process.pid}.${randomBytes(4).toString("hex")}`;
  await fsp.writeFile(mine, String(process.pid), { mode: 0o600 });
  try {
    for (;;) {
      const owner = tryTake(file, mine);
      if (owner === undefined) break;
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${file} held by pid ${owner}`);
      await new Promise((r) => setTimeout(r, o.pollMs));
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
  await sweepDead(file);
  try {
    return await fn();
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** Takes the lock (undefined) or says who holds it. */
function tryTake(file: string, mine: string): number | undefined {
  for (;;) {
    try {
      fs.linkSync(mine, file);
      return undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const owner = holder(file);
    if (owner === "gone") continue;
    if (owner !== "dead") return owner;
    const aside = `${file}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
    try {
      fs.renameSync(file, aside);
    } catch {
      continue; // someone else moved it
    }
    const moved = holder(aside);
    // A live holder's lock, taken over between our two reads: its place back.
    if (typeof moved === "number") {
      try {
        fs.linkSync(aside, file);
      } catch {
        // a third process took the free lock meanwhile: it holds it
      }
    }
    fs.rmSync(aside, { force: true });
  }
}

function holder(file: string): number | "dead" | "gone" {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return "gone";
  }
  const pid = /^\d+$/.test(text) ? Number(text) : 0;
  if (pid > 0) return pidAlive(pid) ? pid : "dead";
  // No pid: judged by its age, read only here (the file may have gone meanwhile).
  const mtimeMs = fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs;
  if (mtimeMs === undefined) return "gone";
  return Date.now() - mtimeMs > UNREADABLE_STALE_MS ? "dead" : 0;
}

/** Removes `<file>.<pid>.<hex>` and `<file>.stale.<pid>.<hex>` files of processes that are gone. */
async function sweepDead(file: string): Promise<void> {
  const prefix = `${path.basename(file)}.`;
  for (const name of await fsp.readdir(path.dirname(file)).catch(() => [] as string[])) {
    const pid = name.startsWith(prefix) ? /^(?:stale\.)?(\d+)\.[0-9a-f]{8}$/.exec(name.slice(prefix.length))?.[1] : undefined;
    if (pid !== undefined && !pidAlive(Number(pid))) await fsp.rm(path.join(path.dirname(file), name), { force: true });
  }
}
