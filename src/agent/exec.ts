import { CHUNK } from "./protocol.js";
import type { ExecCallbacks, ExecRequest, ExecResult, TerminalSize } from "./client-types.js";
import { AgentUnavailableError, agentError, type AgentConnection } from "./connection.js";
import { EXEC_WINDOW, ExecFlow } from "./exec-flow.js";

export { EXEC_WINDOW } from "./exec-flow.js";

/** A command started by AgentClient.exec: its pid, its end, its stdin and signals. */
export class ExecHandle {
  constructor(
    private readonly conn: AgentConnection,
    readonly id: number,
    /** Resolves once the program is running. */
    readonly pid: Promise<number>,
    /** Resolves when it exits; rejects if it could not start. Never settles after `detach`. */
    readonly result: Promise<ExecResult>,
    private readonly flow: ExecFlow,
    private readonly detaching: { wanted: (() => void) | undefined },
  ) {}

  /**
   * Stops this stream's output (an attach stream; the command runs on):
   * resolves once the agent has let go. `result` does not settle after it.
   */
  detach(): Promise<void> {
    return new Promise((resolve) => {
      this.detaching.wanted = resolve;
      this.conn.send({ op: "end", id: this.id });
    });
  }

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

  /** Sets the size of the command's terminal (ENOTTY for one without a pty); its foreground process group gets SIGWINCH. */
  async resize(size: TerminalSize): Promise<void> {
    await this.conn.request({ op: "resize", target: this.id, rows: size.rows, cols: size.cols }, "ok");
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
  const header: Record<string, unknown> = { op: "exec" };
  if (req.argv) header["argv"] = req.argv;
  if (req.cmd !== undefined) header["cmd"] = req.cmd;
  if (req.env) header["env"] = req.env;
  if (req.cwd) header["cwd"] = req.cwd;
  if (req.stdin) header["stdin"] = true;
  if (req.timeoutMs) header["timeoutMs"] = req.timeoutMs;
  if (req.keepAlive) header["keepAlive"] = true;
  if (req.pty) header["pty"] = { rows: req.pty.rows, cols: req.pty.cols };
  if (req.detached) header["detached"] = true;
  if (req.tag !== undefined) header["tag"] = req.tag;
  return execStream(conn, header, cb);
}

/**
 * A command's stream: `header` (an exec, or an attach to a running
 * command) answered by started, output, exit. The handle's stdin, signals
 * and resize go by this stream's id.
 */
export function execStream(conn: AgentConnection, header: Record<string, unknown>, cb: ExecCallbacks): ExecHandle {
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
  const detaching: { wanted: (() => void) | undefined } = { wanted: undefined };
  const id = conn.open({
    frame: (f) => {
      switch (f.header["ev"]) {
        case "ok": // the end of an attach stream (detach)
          conn.end(id);
          detaching.wanted?.();
          break;
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
  // A command this stream starts gets a window (per-command flow control);
  // an attach stream does not: the daemon gives each its own connection,
  // whose hold (or the mux's flow op) pauses it (docs/protocol.md).
  try {
    conn.send(header["op"] === "exec" ? { ...header, id, window: EXEC_WINDOW } : { ...header, id });
  } catch (e) {
    // Never sent (too large for a frame): the stream goes, and nothing of it rejects later, unheard.
    conn.end(id);
    result.catch(() => {});
    throw e;
  }
  return new ExecHandle(conn, id, pid, result, flow, detaching);
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
