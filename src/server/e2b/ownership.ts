import path from "node:path";
import type { AgentClient } from "../../agent/client.js";
import { BackendError, InvalidArgumentError, SandboxOperationError } from "../../core/errors.js";
import type { Sandboxes } from "../../runtime/sandboxes.js";
import type { SandboxUser } from "./accounts.js";

/** Stderr kept from a chown that failed, bytes (for its message). */
const STDERR_KEPT = 4096;

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
  if (user.uid === 0 || paths.length === 0) return;
  let stderr = "";
  const r = await sandboxes.exec(
    sandboxId,
    { argv: ["chown", "-h", "--", `${user.uid}:${user.gid}`, ...paths] },
    { onStderr: (b) => void (stderr = (stderr + b.toString()).slice(0, STDERR_KEPT)) },
    { tenant },
  );
  if (r.exitCode !== 0) throw new BackendError(`could not give ${paths.join(", ")} to ${user.name}: chown ${r.exitCode === null ? `ended by signal ${r.signal}` : `exited ${r.exitCode}`}: ${stderr.trim()}`);
}
