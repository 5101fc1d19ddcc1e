import { Readable } from "node:stream";
import type { AgentClient, ExecHandle } from "../../agent/client.js";
import { NotFoundError, SandboxOperationError } from "../../core/errors.js";
import { toHttpError } from "../http-errors.js";
import { processKey, type ServerContext } from "../context.js";
import type { EventSink, EventStream } from "./types.js";
import { noContent, ok, param, scopeOf, type OpRequest, type Operations } from "./types.js";

/**
 * Commands as the sandbox's agent knows them, whoever started them (this
 * daemon, an earlier one, a CLI without a daemon): listed, joined (the
 * agent replays a background command's last 64 KiB, then streams the rest
 * and the exit), and their terminals resized. Each request has an agent
 * connection of its own, so a reader that falls behind pauses only its
 * stream (and the command, as a terminal would), never another request.
 */
export const processStreamOperations: Operations = {
  async listProcesses(ctx, req) {
    const list = await withAgent(ctx, req, (c) => c.processes());
    return ok({
      processes: list.map((p) => ({ pid: p.pid, argv: p.argv, cwd: p.cwd, tag: p.tag, pty: p.pty, background: p.keepAlive, truncated: p.truncated })),
    });
  },

  async connectProcess(ctx, req) {
    const pid = req.params["pid"] as number;
    const client = await agentFor(ctx, req);
    const known = ctx.processes.get(processKey(req.sandbox!, pid));
    const killOnClose = req.query["killOnClose"] === true;
    const stream = req.query["raw"] === true ? new RawOutput() : new AttachEvents(pid);
    let handle: ExecHandle;
    try {
      handle = client.attach(pid, stream.callbacks());
      handle.result.catch(() => {}); // a pid that is not there fails both: reported through pid
      await handle.pid;
    } catch (e) {
      client.close();
      throw notFoundIfGone(e, pid);
    }
    // The exit: this daemon's record of it when it started the command (it knows an OOM kill), else the agent's.
    const exit = handle.result.then(
      async (r) => (known ? await known.finished : { type: "exit", exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, oomKilled: false }),
      (e: unknown) => ({ type: "error", error: toHttpError(e).body.error }),
    );
    let over = false;
    const finish = (cancelled: boolean) => {
      if (over) return;
      over = true;
      // Killed first when asked (the caller was its terminal), then the connection goes: the agent detaches it.
      if (cancelled && killOnClose) void client.signalPid(pid, 9).catch(() => {}).finally(() => client.close());
      else client.close();
    };
    void exit.then(() => finish(false));
    return stream.answer(exit, () => client.hold(), () => finish(true));
  },

  async resizeProcess(ctx, req) {
    const size = req.body as { rows: number; cols: number };
    const pid = req.params["pid"] as number;
    await withAgent(ctx, req, (c) => c.resize(pid, size).catch((e: unknown) => Promise.reject(notFoundIfGone(e, pid))));
    return noContent;
  },
};

/** A command's output as NDJSON events, as a foreground exec streams them. */
class AttachEvents implements EventStream {
  private sink: EventSink | undefined;
  private early: Record<string, unknown>[] = [];
  private exit: Promise<Record<string, unknown>> | undefined;
  private hold: (() => () => void) | undefined;
  private release: (() => void) | undefined;
  private stop: () => void = () => {};
  private done = false;

  constructor(private readonly pid: number) {}

  callbacks() {
    const out = (type: string) => (b: Buffer) => {
      const e = { type, data: b.toString("base64") };
      if (this.sink) this.sink.event(e);
      else this.early.push(e); // one socket read at most, before the transport starts
    };
    return { onStdout: out("stdout"), onStderr: out("stderr") };
  }

  answer(exit: Promise<Record<string, unknown>>, hold: () => () => void, stop: () => void) {
    this.exit = exit;
    this.hold = hold;
    this.stop = stop;
    return { status: 200 as const, events: this };
  }

  start(sink: EventSink): void {
    this.sink = sink;
    sink.event({ type: "start", pid: this.pid });
    for (const e of this.early.splice(0)) sink.event(e);
    void this.exit?.then((last) => {
      this.done = true;
      this.resume();
      sink.end(last);
    });
  }

  pause(): void {
    if (!this.done && this.hold) this.release ??= this.hold();
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

/**
 * A command's output as bytes (stdout and stderr as they come): a
 * terminal's screen. A full reader holds the agent connection until it
 * reads again.
 */
class RawOutput {
  private readonly stream: Readable;
  private wake: (() => void) | undefined;

  constructor() {
    this.stream = new Readable({
      highWaterMark: 64 * 1024,
      read: () => {
        const w = this.wake;
        this.wake = undefined;
        w?.();
      },
    });
  }

  callbacks() {
    const push = (b: Buffer): Promise<void> | undefined => {
      if (this.stream.destroyed || this.stream.push(b)) return undefined;
      return new Promise<void>((r) => (this.wake = r));
    };
    return { onStdout: push, onStderr: push };
  }

  answer(exit: Promise<Record<string, unknown>>, _hold: () => () => void, stop: () => void) {
    let ended = false;
    void exit.then((last) => {
      ended = true;
      if (last["type"] === "error") this.stream.destroy(new SandboxOperationError("EIO", String((last["error"] as { message?: string } | undefined)?.message ?? "the stream failed")));
      else this.stream.push(null);
    });
    this.stream.once("close", () => {
      if (!ended) stop();
    });
    return { status: 200 as const, bytes: this.stream as Readable, type: "application/octet-stream" };
  }
}

/** An agent's ESRCH for a pid is the API's process_not_found. */
function notFoundIfGone(e: unknown, pid: number): unknown {
  return e instanceof SandboxOperationError && e.errno === "ESRCH" ? new NotFoundError("process", String(pid)) : e;
}

/** A connection of its own to the sandbox's agent; sets the request's sandbox. */
async function agentFor(ctx: ServerContext, req: OpRequest): Promise<AgentClient> {
  const rec = ctx.sandboxes.record(param(req, "id"), scopeOf(req));
  req.sandbox = rec.id;
  return ctx.sandboxes.agent(rec.id, scopeOf(req));
}

/** One agent connection for the length of `fn`. */
export async function withAgent<T>(ctx: ServerContext, req: OpRequest, fn: (c: AgentClient) => Promise<T>): Promise<T> {
  const client = await agentFor(ctx, req);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** `fn` on the sandbox's agent for a pid this daemon does not know (started elsewhere, or before a restart): 404 when the agent runs none. */
export async function byPid<T>(ctx: ServerContext, req: OpRequest, fn: (c: AgentClient, pid: number) => Promise<T>): Promise<T> {
  const pid = req.params["pid"] as number;
  return withAgent(ctx, req, async (c) => {
    try {
      return await fn(c, pid);
    } catch (e) {
      throw notFoundIfGone(e, pid);
    }
  });
}
