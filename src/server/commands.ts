import { InvalidArgumentError } from "../core/errors.js";
import { toHttpError } from "./http-errors.js";
import { ENDED_PROCESSES_KEPT, processKey, type ProcessEntry, type ServerContext } from "./context.js";
import type { EventSink, EventStream } from "./operations/types.js";
import type { Scope } from "../runtime/records.js";

/** The exec request body (api/openapi.yaml ExecRequest). */
export interface ExecBody {
  argv?: string[];
  cmd?: string;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  stdin?: boolean | string;
  background?: boolean;
  pty?: { rows: number; cols: number };
  tag?: string;
}

/** A command the API started. */
export interface StartedCommand {
  readonly pid: number;
  /** The sandbox's id. */
  readonly sandboxId: string;
  /** A foreground command's events (start, output, exit), for the transport to stream; none for a background one. */
  readonly events: CommandEvents | undefined;
}

/**
 * Starts a command in a tenant's sandbox and registers it for stdin,
 * signals and wait. A foreground command's output goes to its events
 * (stdout/stderr, base64) as it comes; a background one's stays in the
 * agent (its last 64 KiB, for connectProcess).
 * Resolves once the command has a pid (a short one may already have
 * ended: its exit then follows at once).
 */
export async function startCommand(ctx: ServerContext, scope: Scope, ref: string, body: ExecBody): Promise<StartedCommand> {
  if (!body.argv && body.cmd === undefined) {
    throw new InvalidArgumentError('exec needs "argv" (the program and its arguments, e.g. ["ls", "-l"]) or "cmd" (a shell command line, run with /bin/sh -c)');
  }
  const background = body.background === true;
  const events = background ? undefined : new CommandEvents();
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
      // A background command's output goes to the agent's ring (connectProcess), not here.
      ...(background ? { detached: true } : {}),
      ...(body.pty ? { pty: body.pty } : {}),
      ...(body.tag !== undefined ? { tag: body.tag } : {}),
    },
    events
      ? {
          onStdout: (b) => events.output({ type: "stdout", data: b.toString("base64") }),
          onStderr: (b) => events.output({ type: "stderr", data: b.toString("base64") }),
        }
      : {},
    scope,
  );
  let pid: number;
  try {
    pid = await handle.pid;
  } catch (e) {
    end();
    throw await ctx.sandboxes.whyFailed(rec, e);
  }
  const key = processKey(rec.id, pid);
  const finished: Promise<Record<string, unknown>> = outcome.then(
    (r) => ({ type: "exit", exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, oomKilled: r.oomKilled }),
    (e: unknown) => ({ type: "error", error: toHttpError(e).body.error }),
  );
  const entry: ProcessEntry = { handle, end, finished, ended: false };
  ctx.processes.set(key, entry);
  events?.attach(pid, finished, end, () => handle.hold());
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
  return { pid, sandboxId: rec.id, events };
}

/**
 * A foreground command's events: `start`, its output as it comes, its
 * `exit` (or `error`) last. Pausing holds the command's credit
 * (ExecHandle.hold, per-command flow control): the agent stops reading
 * this command's pipes once EXEC_WINDOW (256 KiB) is unacknowledged and
 * the command blocks on its writes, while the sandbox's other commands go
 * on. So nothing piles up here beyond one window (plus the drain at its
 * exit). Until the transport starts the stream it is held the same way.
 * Cancelling (the caller left) kills the command.
 */
export class CommandEvents implements EventStream {
  private sink: EventSink | undefined;
  /** Output that came before the transport was ready (one window at most: the command is held until start). */
  private early: Record<string, unknown>[] = [];
  private pid = 0;
  private finished: Promise<Record<string, unknown>> | undefined;
  private stop: () => void = () => {};
  private hold: () => () => void = () => () => {};
  private release: (() => void) | undefined;
  private done = false;

  /** @internal */
  attach(pid: number, finished: Promise<Record<string, unknown>>, stop: () => void, hold: () => () => void): void {
    this.pid = pid;
    this.finished = finished;
    this.stop = stop;
    this.hold = hold;
    // Held until the transport takes the events (start): output that comes
    // first waits in `early`, at most one window of it.
    this.release ??= hold();
  }

  /** @internal */
  output(e: Record<string, unknown>): void {
    if (this.sink) this.sink.event(e);
    else this.early.push(e);
  }

  start(sink: EventSink): void {
    this.sink = sink;
    // The hold taken at attach is let go after the early output went out:
    // a pause the transport asks for meanwhile takes a hold of its own.
    const held = this.release;
    this.release = undefined;
    sink.event({ type: "start", pid: this.pid });
    for (const e of this.early.splice(0)) sink.event(e);
    held?.();
    void this.finished?.then((last) => {
      this.done = true;
      this.resume();
      sink.end(last);
    });
  }

  pause(): void {
    if (!this.done) this.release ??= this.hold();
  }

  resume(): void {
    const r = this.release;
    this.release = undefined;
    r?.();
  }

  cancel(): void {
    this.resume();
    this.stop();
  }
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
