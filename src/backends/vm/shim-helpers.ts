import fs from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import type { VmHelper } from "./vm-virtiofs.js";

/** How long a helper has to listen on its socket (a virtiofsd starts in ~10 ms here; a loaded host is slower). */
const LISTEN_TIMEOUT_MS = 10_000;
/** At most this much of a helper's stderr is kept for its failure message. */
const TAIL_BYTES = 2000;

export interface RunningHelpers {
  /** Ends them (SIGTERM, then SIGKILL a second later); idempotent. */
  stop(): void;
}

/**
 * Starts the VMM's helpers (a share's virtiofsd: vm-virtiofs.ts) and
 * resolves once each listens on its socket, so the VMM, which connects as
 * it starts, finds them. Their stderr goes to `log`, prefixed with their
 * name. One that exits first, or does not listen in time, ends them all
 * and rejects with its stderr's tail. They are the shim's children, in the
 * VM's cgroup: the shim ends them with the VMM, a destroy kills whatever
 * is left in the cgroup.
 */
export async function startHelpers(helpers: readonly VmHelper[], log: (chunk: Buffer) => void): Promise<RunningHelpers> {
  const children: ChildProcess[] = [];
  const stop = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
    const t = setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    }, 1000);
    t.unref();
  };
  try {
    for (const [i, h] of helpers.entries()) {
      fs.rmSync(h.socket, { force: true }); // an earlier run's: it would not bind over it
      const name = `${h.argv.find((a) => a.endsWith("virtiofsd"))?.split("/").pop() ?? "helper"} ${i}`;
      const c = spawn(h.argv[0]!, h.argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
      children.push(c);
      let tail = "";
      c.stderr!.on("data", (d: Buffer) => {
        tail = (tail + d.toString()).slice(-TAIL_BYTES);
        log(Buffer.from(`[${name}] ${d.toString()}`));
      });
      const exited = new Promise<string>((resolve) => {
        c.once("error", (e) => resolve(`${name} could not start: ${e.message}`));
        c.once("exit", (code, signal) => resolve(`${name} exited (${signal ?? `code ${code}`}): ${tail.trim().split("\n").slice(-3).join("; ")}`));
      });
      await listening(h.socket, exited);
    }
  } catch (e) {
    stop();
    throw e;
  }
  return { stop };
}

/** Resolves once `socket` exists; rejects with the helper's own words if it exits first, or after LISTEN_TIMEOUT_MS. */
async function listening(socket: string, exited: Promise<string>): Promise<void> {
  let gone: string | undefined;
  void exited.then((why) => (gone = why));
  const deadline = Date.now() + LISTEN_TIMEOUT_MS;
  while (!fs.existsSync(socket)) {
    // A breath for the exit event before it is taken for a socket that never came.
    await new Promise((r) => setTimeout(r, 5));
    if (gone !== undefined) throw new Error(gone);
    if (Date.now() > deadline) throw new Error(`no socket ${socket} after ${LISTEN_TIMEOUT_MS} ms`);
  }
}
