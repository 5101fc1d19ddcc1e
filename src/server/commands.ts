import { InvalidArgumentError } from "../core/errors.js";
import { toHttpError } from "./http-errors.js";
import { ENDED_PROCESSES_KEPT, processKey, type ProcessEntry, type ServerContext } from "./context.js";

/** The exec request body (api/openapi.yaml ExecRequest). */
export interface ExecBody {
  argv?: string[];
  cmd?: string;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  stdin?: boolean | string;
  background?: boolean;
}

/** A command the API started, as both transports (HTTP, /v1/connect) answer for it. */
export interface StartedCommand {
  readonly pid: number;
  readonly background: boolean;
  /** The exit (or error) event, once the command has ended. */
  readonly finished: Promise<Record<string, unknown>>;
  /** Done with it: a foreground command that still runs is killed (its caller left). */
  readonly end: () => void;
}

/**
 * Starts a command in a tenant's sandbox and registers it for stdin,
 * signals and wait. A foreground command's output goes to `onOutput` as
 * stdout/stderr events (base64) as it comes; a background one's is not
 * kept. Resolves once the command has a pid (a short one may already have
 * ended: its exit is then in `finished`).
 */
export async function startCommand(
  ctx: ServerContext,
  tenant: string,
  ref: string,
  body: ExecBody,
  onOutput: (event: Record<string, unknown>) => void,
): Promise<StartedCommand> {
  if (!body.argv && body.cmd === undefined) throw new InvalidArgumentError("exec needs argv or cmd");
  const background = body.background === true;
  const { record: rec, handle, outcome, end } = await ctx.sandboxes.startExec(
    ref,
    {
      ...(body.argv ? { argv: body.argv } : {}),
      ...(body.cmd !== undefined ? { cmd: body.cmd } : {}),
      ...(body.env ? { env: body.env } : {}),
      ...(body.cwd ? { cwd: body.cwd } : {}),
      ...(body.timeoutMs ? { timeoutMs: body.timeoutMs } : {}),
      stdin: body.stdin !== undefined && body.stdin !== false,
      keepAlive: background,
    },
    background
      ? {}
      : {
          onStdout: (b) => onOutput({ type: "stdout", data: b.toString("base64") }),
          onStderr: (b) => onOutput({ type: "stderr", data: b.toString("base64") }),
        },
    { tenant },
  );
  let pid: number;
  try {
    pid = await handle.pid;
  } catch (e) {
    end();
    throw e;
  }
  const key = processKey(rec.id, pid);
  const finished: Promise<Record<string, unknown>> = outcome.then(
    (r) => ({ type: "exit", exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, oomKilled: r.oomKilled }),
    (e: unknown) => ({ type: "error", error: toHttpError(e).body.error }),
  );
  const entry: ProcessEntry = { handle, end, finished, ended: false };
  ctx.processes.set(key, entry);
  if (typeof body.stdin === "string") {
    await handle.writeStdin(Buffer.from(body.stdin, "base64"));
    await handle.closeStdin();
  }
  void finished.finally(() => {
    end();
    entry.ended = true;
    // A foreground command's exit went to its caller; a background one's
    // is kept for wait, the oldest forgotten past the bound.
    if (!background) ctx.processes.delete(key);
    else forgetOldEnded(ctx.processes);
  });
  return { pid, background, finished, end };
}

function forgetOldEnded(processes: Map<string, ProcessEntry>): void {
  let ended = 0;
  for (const p of processes.values()) if (p.ended) ended++;
  for (const [k, p] of processes) {
    if (ended <= ENDED_PROCESSES_KEPT) break;
    if (p.ended) {
      processes.delete(k);
      ended--;
    }
  }
}
