import { spawn, type SpawnOptions } from "node:child_process";
import { BackendError, HostError } from "../core/errors.js";

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly input?: string;
  /** Called with each stderr line as it arrives (progress parsing). */
  readonly onStderrLine?: (line: string) => void;
  /** Resolve with a non-zero code instead of throwing. */
  readonly allowFailure?: boolean;
  readonly timeoutMs?: number;
}

/**
 * Runs a host program and collects its output. The one place corral spawns
 * host tools (crun, mmdebstrap, mount helpers), so failures read the same
 * everywhere: the command, its exit code and the tail of its stderr.
 */
export function runCommand(cmd: string, args: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const so: SpawnOptions = { stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] };
    if (opts.env) so.env = opts.env;
    if (opts.cwd) so.cwd = opts.cwd;
    if (opts.timeoutMs) so.timeout = opts.timeoutMs;
    const child = spawn(cmd, args, so);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let partial = "";
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => {
      err.push(c);
      if (opts.onStderrLine) {
        const lines = (partial + c.toString()).split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) opts.onStderrLine(l);
      }
    });
    if (opts.input !== undefined) {
      child.stdin!.on("error", () => {}); // it exited without reading: reported at close
      child.stdin!.end(opts.input);
    }
    child.on("error", (e: NodeJS.ErrnoException) => {
      reject(
        e.code === "ENOENT"
          ? new HostError(`${cmd} is not installed on this host (run scripts/setup.sh)`, { cause: e })
          : new BackendError(`${cmd}: ${e.message}`, { cause: e }),
      );
    });
    child.on("close", (code, signal) => {
      const r = {
        code: code ?? 128 + (signal ? 9 : 0),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (r.code !== 0 && !opts.allowFailure) {
        const tail = r.stderr.trim().split("\n").slice(-5).join("\n");
        reject(new BackendError(`${cmd} ${args.slice(0, 3).join(" ")}... failed (exit ${signal ?? r.code}): ${tail}`));
      } else resolve(r);
    });
  });
}

/** Whether a program is on PATH. */
export async function haveCommand(cmd: string): Promise<boolean> {
  const r = await runCommand("sh", ["-c", `command -v ${cmd}`], { allowFailure: true });
  return r.code === 0;
}
