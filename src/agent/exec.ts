import { CHUNK } from "./protocol.js";
import type { ExecCallbacks, ExecRequest, ExecResult, TerminalSize } from "./client-types.js";
import { agentError, type AgentConnection } from "./connection.js";

/** A command started by AgentClient.exec: its pid, its end, its stdin and signals. */
export class ExecHandle {
  constructor(
    private readonly conn: AgentConnection,
    readonly id: number,
    /** Resolves once the program is running. */
    readonly pid: Promise<number>,
    /** Resolves when it exits; rejects if it could not start. Never settles after `detach`. */
    readonly result: Promise<ExecResult>,
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
    return sendStdin(this.conn, this.id, typeof data === "string" ? Buffer.from(data) : data);
  }

  closeStdin(): Promise<void> {
    return sendStdin(this.conn, this.id, undefined);
  }

  /** Sends `signal` (default SIGKILL) to the command's process group. */
  kill(signal = 9): Promise<void> {
    return sendSignal(this.conn, this.id, signal);
  }

  /** Sets the size of the command's terminal (ENOTTY for one without a pty); its foreground process group gets SIGWINCH. */
  async resize(size: TerminalSize): Promise<void> {
    await this.conn.request({ op: "resize", target: this.id, rows: size.rows, cols: size.cols }, "ok");
  }

  hold(): () => void {
    return this.conn.hold();
  }
}

/** Starts a command; its output goes to `cb`, whose promises hold the connection (AgentConnection.holdFor). */
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
  const detaching: { wanted: (() => void) | undefined } = { wanted: undefined };
  const id = conn.open({
    frame: (f) => {
      switch (f.header["ev"]) {
        case "ok": // the end of an attach stream (detach)
          conn.end(id);
          detaching.wanted?.();
          break;
        case "started":
          resolvePid(Number(f.header["pid"]));
          break;
        case "stdout":
          conn.holdFor(cb.onStdout?.(f.payload));
          break;
        case "stderr":
          conn.holdFor(cb.onStderr?.(f.payload));
          break;
        case "exit":
          conn.end(id);
          resolveResult({
            exitCode: typeof f.header["code"] === "number" ? f.header["code"] : null,
            signal: typeof f.header["signal"] === "number" ? f.header["signal"] : null,
            timedOut: f.header["timedOut"] === true,
          });
          break;
        default:
          conn.end(id);
          rejectAll(agentError(f.header));
      }
    },
    fail: (e) => rejectAll(e),
  });
  try {
    conn.send({ ...header, id });
  } catch (e) {
    // Never sent (too large for a frame): the stream goes, and nothing of it rejects later, unheard.
    conn.end(id);
    result.catch(() => {});
    throw e;
  }
  return new ExecHandle(conn, id, pid, result, detaching);
}

/** Sends `data` to command `id`'s stdin in frames of at most CHUNK bytes, or closes it (undefined). */
async function sendStdin(conn: AgentConnection, id: number, data: Buffer | undefined): Promise<void> {
  if (data === undefined) {
    conn.send({ op: "stdin", id, eof: true });
    return;
  }
  for (let o = 0; o < data.length; o += CHUNK) {
    await conn.sendWithBackpressure({ op: "stdin", id }, data.subarray(o, o + CHUNK));
  }
}

/** Sends `signal` to the process group of command `target`. */
export async function sendSignal(conn: AgentConnection, target: number, signal: number): Promise<void> {
  await conn.request({ op: "signal", target, signal }, "ok");
}
