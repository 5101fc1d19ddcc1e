import { InvalidArgumentError } from "../../core/errors.js";
import { formatSize } from "../../core/size.js";
import { keyValues } from "../format.js";
import { commandTimeoutSeconds } from "../spec-flags.js";
import type { CliTarget, ExecInput } from "../target.js";
import { runTerminal } from "../terminal.js";
import type { Action } from "./action.js";

/** `corral exec SANDBOX -- CMD...`: the command's exit status (128+signal when a signal ended it). */
export const exec: Action = async (ctx, p) => {
  const { sandbox, command } = p.args as { sandbox: string; command: string[] };
  const f = p.opts as { env: string[]; workdir?: string; interactive?: boolean; tty?: boolean; timeout?: string };
  if (f.tty) {
    // `exec -it`: the command on a terminal, as `shell` runs it.
    if (f.timeout !== undefined) throw new InvalidArgumentError("--timeout is not taken with --tty");
    if (command.length === 0) throw new InvalidArgumentError("no command given (put it after --)");
    return runTerminal(await ctx.target(), sandbox, { argv: command, env: keyValues(f.env, "--env"), ...(f.workdir ? { workdir: f.workdir } : {}) });
  }
  const req: ExecInput = { argv: command, env: keyValues(f.env, "--env"), stdin: f.interactive ?? false };
  if (f.workdir) req.workdir = f.workdir;
  if (f.timeout !== undefined) req.timeoutSeconds = commandTimeoutSeconds(f.timeout);
  return runIn(await ctx.target(), sandbox, req);
};

/** Runs argv in a sandbox with the terminal's streams; returns the exit code. */
export async function runIn(target: CliTarget, ref: string, req: ExecInput): Promise<number> {
  if (req.argv.length === 0) throw new InvalidArgumentError("no command given (put it after --)");
  const r = await target.exec(ref, req);
  if (r.timedOut) process.stderr.write(`corral: the command timed out after ${req.timeoutSeconds}s and was killed\n`);
  if (r.oom) process.stderr.write(`corral: the command was killed by the OOM killer (memory limit ${formatSize(r.oom.memoryLimit)})\n`);
  return r.exitCode ?? 128 + (r.signal ?? 0);
}
