import { spawn } from "node:child_process";
import { BackendError } from "../core/errors.js";

export interface ReadyLaunch {
  /** stdout and stderr of the program (and of what it leaves running). */
  readonly logFd: number;
  readonly timeoutMs: number;
  /**
   * A pipe on the program's fd 3 that what it starts writes "ready\n" to
   * (crun passes it to the container's init with --preserve-fds=1). Without
   * it the program's exit with status 0 is all that is waited for.
   */
  readonly readyPipe: boolean;
}

/**
 * Runs a launcher (corral-launch → an OCI runtime) with stdout/stderr on
 * `logFd` and, with `readyPipe`, a pipe on fd 3 that reaches the sandbox's
 * agent; resolves when the launcher has exited successfully and (readyPipe)
 * the agent has said "ready" on the pipe. The pipe closing without it means
 * the sandbox died on the way up.
 */
export function spawnUntilReady(cmd: string, args: readonly string[], o: ReadyLaunch): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ["ignore", o.logFd, o.logFd, o.readyPipe ? "pipe" : "ignore"] });
    const ready = o.readyPipe ? (c.stdio[3] as NodeJS.ReadableStream & { destroy(): void }) : undefined;
    let exited = false;
    let isReady = !o.readyPipe;
    let settled = false;
    const finish = (e?: Error) => {
      if (settled) return;
      if (!e && !(exited && isReady)) return;
      settled = true;
      clearTimeout(timer);
      ready?.destroy();
      if (e) reject(e);
      else resolve();
    };
    const timer = setTimeout(() => finish(new BackendError(`the sandbox's agent was not ready within ${o.timeoutMs} ms`)), o.timeoutMs);
    let text = "";
    ready?.on("data", (d: Buffer) => {
      text += d.toString();
      if (text.includes("ready\n")) {
        isReady = true;
        finish();
      }
    });
    ready?.on("end", () => {
      if (!isReady) finish(new BackendError("the sandbox exited before its agent was ready"));
    });
    ready?.on("error", () => {});
    c.on("error", (e) => finish(new BackendError(`cannot run ${cmd}: ${e.message}`, { cause: e })));
    c.on("exit", (code, signal) => {
      exited = true;
      if (code === 0) finish();
      else finish(new BackendError(`${cmd} exited with ${signal ?? code}`));
    });
  });
}
