import { CHUNK } from "./protocol.js";
import type { ExecCallbacks, ExecRequest, ExecResult } from "./client-types.js";
import { AgentUnavailableError, agentError, type AgentConnection } from "./connection.js";

/**
 * Bytes of a command's output the agent may send unacknowledged, and of its
 * stdin the host may send unacknowledged (docs/protocol.md, exec
 * `window`). A stalled consumer thus holds at most this much of one
 * command's output here (plus the drain at its exit, ≤ 4 MiB), and stops
 * that command only: the connection's other commands go on. 256 KiB is
 * four quarter-window credits in flight: `cat /dev/zero` to a fast reader
 * ran at the same rate as with no window (the agent's own 1 MiB
 * connection pause), measured here.
 */
export const EXEC_WINDOW = 256 * 1024;

/**
 * Per-command flow control, once the agent said (in `started`) that it
 * speaks it: output is credited back as its consumer takes it, and stdin
 * waits for the agent's acknowledgements. An older agent (no `window` in
 * `started`) gets the connection-wide pause instead (AgentConnection.hold).
 */
class ExecFlow {
  /** The agent acknowledged `window` in `started`. */
  enabled = false;
  private holds = 0;
  private owed = 0; // output taken by its consumer, not yet credited
  private stdinOut = 0; // stdin sent, not yet acknowledged
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private over: Error | undefined;

  constructor(
    private readonly conn: AgentConnection,
    private readonly id: number,
  ) {}

  /** A chunk of output went to its consumer; `pending` (its promise, if any) holds the credit until it settles. */
  delivered(bytes: number, pending: unknown): void {
    if (!this.enabled) {
      this.conn.holdFor(pending);
      return;
    }
    if (typeof (pending as PromiseLike<unknown> | undefined)?.then === "function") {
      const release = this.hold();
      (pending as PromiseLike<unknown>).then(release, release);
    }
    this.owed += bytes;
    this.maybeCredit();
  }

  /** Stops crediting this command's output until released (holds nest). */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.maybeCredit();
    };
  }

  private maybeCredit(): void {
    if (this.holds > 0 || this.over || this.owed < EXEC_WINDOW / 4) return;
    const bytes = this.owed;
    this.owed = 0;
    try {
      this.conn.send({ op: "credit", id: this.id, bytes });
    } catch {
      // The connection is gone: the command's stream fails through it.
    }
  }

  /** Waits until `bytes` more of stdin fit in the window (at once for an older agent). */
  async room(bytes: number): Promise<void> {
    while (this.enabled && !this.over && this.stdinOut > 0 && this.stdinOut + bytes > EXEC_WINDOW) {
      await new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    }
    if (this.over) throw this.over;
    this.stdinOut += bytes;
  }

  /** The agent acknowledged `bytes` of stdin. */
  acknowledged(bytes: number): void {
    this.stdinOut = Math.max(0, this.stdinOut - bytes);
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** The command's stream is over: stdin still waiting is dropped, as the agent drops it. */
  end(e: Error): void {
    this.over ??= e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}

/** A command started by AgentClient.exec: its pid, its end, its stdin and signals. */
export class ExecHandle {
  constructor(
    private readonly conn: AgentConnection,
    readonly id: number,
    /** Resolves once the program is running. */
    readonly pid: Promise<number>,
    /** Resolves when it exits; rejects if it could not start. */
    readonly result: Promise<ExecResult>,
    private readonly flow: ExecFlow,
  ) {}

  writeStdin(data: Buffer | string): Promise<void> {
    return sendStdin(this.conn, this.flow, this.id, typeof data === "string" ? Buffer.from(data) : data);
  }

  closeStdin(): Promise<void> {
    return sendStdin(this.conn, this.flow, this.id, undefined);
  }

  /** Sends `signal` (default SIGKILL) to the command's process group. */
  kill(signal = 9): Promise<void> {
    return sendSignal(this.conn, this.id, signal);
  }

  /**
   * Stops taking this command's output until released: the agent stops
   * reading its pipes once a window (EXEC_WINDOW) is unacknowledged, and
   * the command blocks on its writes. With an agent older than per-command
   * flow control, the whole connection pauses instead.
   */
  hold(): () => void {
    return this.flow.enabled ? this.flow.hold() : this.conn.hold();
  }
}

/** Starts a command; its output goes to `cb`, whose promises hold its credit (or, with an older agent, the connection). */
export function startExec(conn: AgentConnection, req: ExecRequest, cb: ExecCallbacks): ExecHandle {
  let resolvePid!: (pid: number) => void;
  let resolveResult!: (r: ExecResult) => void;
  let rejectAll!: (e: Error) => void;
  const pid = new Promise<number>((res, rej) => {
    resolvePid = res;
    rejectAll = rej;
  });
  const result = new Promise<ExecResult>((res, rej) => {
    resolveResult = res;
    const prev = rejectAll;
    rejectAll = (e) => {
      prev(e);
      rej(e);
    };
  });
  pid.catch(() => {}); // callers may only await `result`
  let flow!: ExecFlow;
  const id = conn.open({
    frame: (f) => {
      switch (f.header["ev"]) {
        case "started":
          flow.enabled = f.header["window"] === EXEC_WINDOW;
          resolvePid(Number(f.header["pid"]));
          break;
        case "stdout":
          flow.delivered(f.payload.length, cb.onStdout?.(f.payload));
          break;
        case "stderr":
          flow.delivered(f.payload.length, cb.onStderr?.(f.payload));
          break;
        case "credit":
          flow.acknowledged(typeof f.header["bytes"] === "number" ? f.header["bytes"] : 0);
          break;
        case "exit":
          conn.end(id);
          flow.end(new AgentUnavailableError("the command has exited"));
          resolveResult({
            exitCode: typeof f.header["code"] === "number" ? f.header["code"] : null,
            signal: typeof f.header["signal"] === "number" ? f.header["signal"] : null,
            timedOut: f.header["timedOut"] === true,
          });
          break;
        default:
          conn.end(id);
          flow.end(agentError(f.header));
          rejectAll(agentError(f.header));
      }
    },
    fail: (e) => {
      flow.end(e);
      rejectAll(e);
    },
  });
  flow = new ExecFlow(conn, id);
  const header: Record<string, unknown> = { op: "exec", id, window: EXEC_WINDOW };
  if (req.argv) header["argv"] = req.argv;
  if (req.cmd !== undefined) header["cmd"] = req.cmd;
  if (req.env) header["env"] = req.env;
  if (req.cwd) header["cwd"] = req.cwd;
  if (req.stdin) header["stdin"] = true;
  if (req.timeoutMs) header["timeoutMs"] = req.timeoutMs;
  if (req.keepAlive) header["keepAlive"] = true;
  conn.send(header);
  return new ExecHandle(conn, id, pid, result, flow);
}

/**
 * Sends `data` to command `id`'s stdin in frames of at most CHUNK bytes,
 * each within the command's window (and the socket's back-pressure), or
 * closes it (undefined). Stdin for a command that has ended is dropped.
 */
async function sendStdin(conn: AgentConnection, flow: ExecFlow, id: number, data: Buffer | undefined): Promise<void> {
  if (data === undefined) {
    conn.send({ op: "stdin", id, eof: true });
    return;
  }
  for (let o = 0; o < data.length; o += CHUNK) {
    const chunk = data.subarray(o, o + CHUNK);
    try {
      await flow.room(chunk.length);
    } catch {
      return;
    }
    await conn.sendWithBackpressure({ op: "stdin", id }, chunk);
  }
}

/** Sends `signal` to the process group of command `target`. */
export async function sendSignal(conn: AgentConnection, target: number, signal: number): Promise<void> {
  await conn.request({ op: "signal", target, signal }, "ok");
}
