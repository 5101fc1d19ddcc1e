import path from "node:path";
import type { AgentClient } from "../../agent/client.js";
import { BackendError, InvalidArgumentError, SandboxOperationError } from "../../core/errors.js";
import type { Sandboxes } from "../../runtime/sandboxes.js";
import type { SandboxUser } from "./accounts.js";

/** Stderr kept from a chown that failed, bytes (for its message). */
const STDERR_KEPT = 4096;
/**
 * Bytes of paths one chown takes: its argv travels in one agent frame
 * header (at most 64 KiB, JSON-escaped), so many paths take several.
 */
const ARGV_BYTES = 32 * 1024;

/**
 * The directories on the way to `dir` (itself included) that do not exist
 * yet, top first: what a write with mkdirs will create, and envd gives to
 * the request's user. A file where a directory must be is envd's 400.
 */
export async function missingDirs(agent: AgentClient, dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let d = dir; d !== "/" && d !== "."; d = path.posix.dirname(d)) {
    try {
      const st = await agent.stat(d);
      if (st.type !== "dir") throw new InvalidArgumentError(`path is a file: ${d}`);
      break;
    } catch (e) {
      if (!(e instanceof SandboxOperationError) || e.errno !== "ENOENT") throw e;
      missing.unshift(d);
    }
  }
  return missing;
}

/**
 * Gives paths the agent made (as root) to the request's user, as envd
 * makes them as that user: one `chown -h` in the sandbox, as root. Root's
 * need nothing.
 */
export async function giveTo(sandboxes: Sandboxes, sandboxId: string, tenant: string, user: SandboxUser, paths: readonly string[]): Promise<void> {
  if (user.uid === 0) return;
  for (const batch of batches(paths)) {
    let stderr = "";
    const r = await sandboxes.exec(
      sandboxId,
      { argv: ["chown", "-h", "--", `${user.uid}:${user.gid}`, ...batch] },
      { onStderr: (b) => void (stderr = (stderr + b.toString()).slice(0, STDERR_KEPT)) },
      { tenant },
    );
    if (r.exitCode !== 0) throw new BackendError(`could not give ${batch.join(", ")} to ${user.name}: chown ${r.exitCode === null ? `ended by signal ${r.signal}` : `exited ${r.exitCode}`}: ${stderr.trim()}`);
  }
}

/** Paths in groups of at most ARGV_BYTES (a path is at most 4096 bytes, so each group has one or more). */
export function batches(paths: readonly string[]): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    const n = Buffer.byteLength(p) + 8;
    if (cur.length && bytes + n > ARGV_BYTES) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(p);
    bytes += n;
  }
  if (cur.length) out.push(cur);
  return out;
}
