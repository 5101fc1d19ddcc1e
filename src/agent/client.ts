import type net from "node:net";
import { Readable } from "node:stream";
import { CorralError, SandboxOperationError, TimeoutError } from "../core/errors.js";
import { CHUNK, encodeFrame, FrameDecoder, type Frame, type Header } from "./protocol.js";
import { connectHybridVsock, VsockHandshakeError } from "./hybrid-vsock.js";
import { connectUnixNoFollow } from "./unix-socket.js";

export interface ExecRequest {
  /** Program and arguments; or use `cmd` for a shell string. */
  readonly argv?: readonly string[];
  readonly cmd?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Keep stdin open as a pipe (otherwise /dev/null). */
  readonly stdin?: boolean;
  readonly timeoutMs?: number;
  /** Let the process outlive this connection. */
  readonly keepAlive?: boolean;
}

/**
 * Where a command's output goes. A callback may return a promise (its
 * consumer is full, e.g. the CLI's stdout to a slow pipe): the connection
 * is paused until it settles, and the agent then stops reading the
 * command's pipes, so the command blocks instead of its output piling up.
 * On a connection shared by several streams that pauses them all.
 */
export interface ExecCallbacks {
  onStdout?(chunk: Buffer): unknown;
  onStderr?(chunk: Buffer): unknown;
}

export interface ExecResult {
  /** Exit status, or null when killed by a signal. */
  readonly exitCode: number | null;
  readonly signal: number | null;
  readonly timedOut: boolean;
}

export interface FileStat {
  readonly type: "file" | "dir" | "symlink" | "other";
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtimeMs: number;
  readonly target: string | null;
}

export interface DirEntry {
  readonly name: string;
  readonly type: FileStat["type"];
  readonly size: number;
  readonly mode: number;
  readonly mtimeMs: number;
}

/** The agent went away (sandbox stopped, crashed, or the socket closed). */
export class AgentUnavailableError extends CorralError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("agent_unavailable", message, 502, options);
  }
}

type StreamHandler = {
  frame(f: Frame): void;
  fail(e: Error): void;
};

export { connectUnixNoFollow } from "./unix-socket.js";

export class AgentClient {
  private readonly decoder = new FrameDecoder();
  private readonly streams = new Map<number, StreamHandler>();
  private nextId = 1;
  private closedWith: Error | undefined;
  /** Consumers that asked the connection to stop reading (hold, holdFor). */
  private holds = 0;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay?.(true);
    socket.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.shutdown(new AgentUnavailableError(`agent protocol error: ${(e as Error).message}`));
        return;
      }
      for (const f of frames) {
        const id = f.header["id"];
        if (typeof id !== "number") continue;
        this.streams.get(id)?.frame(f);
      }
    });
    socket.on("error", (e) => this.shutdown(new AgentUnavailableError(`agent connection failed: ${e.message}`, { cause: e })));
    socket.on("close", () => this.shutdown(new AgentUnavailableError("agent connection closed")));
    socket.resume(); // a stream handed over paused (after a vsock handshake) flows again
  }

  /** Wraps an already connected byte stream (unix socket, vsock, serial). */
  static fromSocket(socket: net.Socket): AgentClient {
    return new AgentClient(socket);
  }

  /**
   * Connects to the agent's socket, retrying until it is there or the
   * deadline passes (the agent creates it a few ms after the sandbox starts).
   */
  static async connect(path: string, timeoutMs = 5000): Promise<AgentClient> {
    const deadline = Date.now() + timeoutMs;
    let delay = 0.5;
    for (;;) {
      try {
        return new AgentClient(await connectUnixNoFollow(path));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "ENOENT" && code !== "ECONNREFUSED") {
          throw new AgentUnavailableError(`cannot reach the agent at ${path}: ${(e as Error).message}`, { cause: e });
        }
        if (Date.now() >= deadline) throw new TimeoutError(`the agent did not answer at ${path} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 20);
      }
    }
  }

  /**
   * Connects to the agent in a VM through the hypervisor's hybrid vsock
   * socket (Cloud Hypervisor, Firecracker): `CONNECT <port>` on `uds`, see
   * connectHybridVsock. Retries while the socket is missing or the guest
   * does not accept yet (the agent starts after the guest kernel boots),
   * until the deadline.
   */
  static async connectVsock(uds: string, port: number, timeoutMs = 5000): Promise<AgentClient> {
    const deadline = Date.now() + timeoutMs;
    let delay = 1;
    for (;;) {
      let why: string;
      try {
        return new AgentClient(await connectHybridVsock(uds, port, Math.max(1, Math.min(2000, deadline - Date.now()))));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (!(e instanceof VsockHandshakeError) && code !== "ENOENT" && code !== "ECONNREFUSED") {
          throw new AgentUnavailableError(`cannot reach the agent through ${uds}: ${(e as Error).message}`, { cause: e });
        }
        why = (e as Error).message;
      }
      if (Date.now() >= deadline) {
        throw new TimeoutError(`the agent did not answer on vsock port ${port} through ${uds} within ${timeoutMs} ms (last: ${why})`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 50);
    }
  }

  /** Stops reading until released (holds nest): the agent then pauses this connection's commands (docs/protocol.md). */
  hold(): () => void {
    this.holds++;
    this.socket.pause();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.holds === 0 && this.socket.isPaused()) this.socket.resume();
    };
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
    this.shutdown(new AgentUnavailableError("agent connection closed by the host"));
  }

  private shutdown(e: Error): void {
    if (this.closedWith) return;
    this.closedWith = e;
    for (const h of this.streams.values()) h.fail(e);
    this.streams.clear();
    this.socket.destroy();
  }

  private send(header: Header, payload?: Buffer): boolean {
    if (this.closedWith) throw this.closedWith;
    return this.socket.write(encodeFrame(header, payload));
  }

  private async sendWithBackpressure(header: Header, payload?: Buffer): Promise<void> {
    if (!this.send(header, payload)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.socket.off("close", onClose);
          resolve();
        };
        const onClose = () => {
          this.socket.off("drain", onDrain);
          reject(this.closedWith ?? new AgentUnavailableError("agent connection closed"));
        };
        this.socket.once("drain", onDrain);
        this.socket.once("close", onClose);
      });
    }
  }

  private open(handler: StreamHandler): number {
    if (this.closedWith) throw this.closedWith;
    const id = this.nextId;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    this.streams.set(id, handler);
    return id;
  }

  /** One request, one reply (`ev` = `expect`), or an error. */
  private request(header: Record<string, unknown>, expect: string): Promise<Header> {
    return new Promise((resolve, reject) => {
      const id = this.open({
        frame: (f) => {
          this.streams.delete(id);
          if (f.header["ev"] === expect) resolve(f.header);
          else reject(agentError(f.header));
        },
        fail: reject,
      });
      this.send({ ...header, id });
    });
  }

  async hello(): Promise<{ version: number; agent: string; pid: number }> {
    const h = await this.request({ op: "hello" }, "hello");
    return { version: Number(h["version"]), agent: String(h["agent"]), pid: Number(h["pid"]) };
  }

  exec(req: ExecRequest, cb: ExecCallbacks = {}): ExecHandle {
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
    const id = this.open({
      frame: (f) => {
        switch (f.header["ev"]) {
          case "started":
            resolvePid(Number(f.header["pid"]));
            break;
          case "stdout":
            this.holdFor(cb.onStdout?.(f.payload));
            break;
          case "stderr":
            this.holdFor(cb.onStderr?.(f.payload));
            break;
          case "exit":
            this.streams.delete(id);
            resolveResult({
              exitCode: typeof f.header["code"] === "number" ? f.header["code"] : null,
              signal: typeof f.header["signal"] === "number" ? f.header["signal"] : null,
              timedOut: f.header["timedOut"] === true,
            });
            break;
          default:
            this.streams.delete(id);
            rejectAll(agentError(f.header));
        }
      },
      fail: (e) => rejectAll(e),
    });
    const header: Record<string, unknown> = { op: "exec", id };
    if (req.argv) header["argv"] = req.argv;
    if (req.cmd !== undefined) header["cmd"] = req.cmd;
    if (req.env) header["env"] = req.env;
    if (req.cwd) header["cwd"] = req.cwd;
    if (req.stdin) header["stdin"] = true;
    if (req.timeoutMs) header["timeoutMs"] = req.timeoutMs;
    if (req.keepAlive) header["keepAlive"] = true;
    this.send(header);
    return new ExecHandle(this, id, pid, result);
  }

  /** Pauses the connection until `pending` (a consumer's promise) settles. */
  private holdFor(pending: unknown): void {
    if (typeof (pending as PromiseLike<unknown> | undefined)?.then !== "function") return;
    const release = this.hold();
    (pending as PromiseLike<unknown>).then(release, release);
  }

  /** Runs a command to completion, collecting its output. */
  async run(req: ExecRequest): Promise<ExecResult & { stdout: Buffer; stderr: Buffer }> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const r = await this.exec(req, { onStdout: (b) => out.push(b), onStderr: (b) => err.push(b) }).result;
    return { ...r, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
  }

  /** @internal */
  async stdin(id: number, data: Buffer | undefined): Promise<void> {
    if (data === undefined) {
      this.send({ op: "stdin", id, eof: true });
      return;
    }
    for (let o = 0; o < data.length; o += CHUNK) {
      await this.sendWithBackpressure({ op: "stdin", id }, data.subarray(o, o + CHUNK));
    }
  }

  async signal(target: number, signal: number): Promise<void> {
    await this.request({ op: "signal", target, signal }, "ok");
  }

  /** Streams `source` into a file inside the sandbox. */
  async writeFile(
    path: string,
    source: Buffer | string | AsyncIterable<Buffer | string>,
    opts: { mode?: number; append?: boolean; mkdirs?: boolean } = {},
  ): Promise<{ size: number }> {
    let failed: Error | undefined;
    let settle!: { resolve: (h: Header) => void; reject: (e: Error) => void };
    const done = new Promise<Header>((resolve, reject) => (settle = { resolve, reject }));
    const id = this.open({
      frame: (f) => {
        this.streams.delete(id);
        if (f.header["ev"] === "ok") settle.resolve(f.header);
        else settle.reject((failed = agentError(f.header)));
      },
      fail: (e) => settle.reject((failed = e)),
    });
    done.catch(() => {});
    this.send({ op: "write", id, path, mode: opts.mode ?? 0o644, append: opts.append ?? false, mkdirs: opts.mkdirs ?? false });
    const chunks: AsyncIterable<Buffer | string> | Iterable<Buffer | string> =
      typeof source === "string" || Buffer.isBuffer(source) ? [source] : source;
    for await (const c of chunks) {
      const b = typeof c === "string" ? Buffer.from(c) : c;
      for (let o = 0; o < b.length; o += CHUNK) {
        if (failed) throw failed;
        await this.sendWithBackpressure({ op: "data", id }, b.subarray(o, o + CHUNK));
      }
    }
    if (!failed) this.send({ op: "end", id });
    const h = await done;
    return { size: Number(h["size"]) };
  }

  /**
   * Streams a file out of the sandbox. The returned Readable applies
   * backpressure by pausing the connection when the consumer falls behind.
   */
  readFile(path: string, opts: { offset?: number; length?: number } = {}): Readable {
    const stream = new Readable({
      read: () => {
        if (this.socket.isPaused() && this.holds === 0) this.socket.resume();
      },
    });
    const id = this.open({
      frame: (f) => {
        if (f.header["ev"] === "data") {
          if (!stream.push(f.payload)) this.socket.pause();
        } else if (f.header["ev"] === "end") {
          this.streams.delete(id);
          stream.push(null);
        } else {
          this.streams.delete(id);
          stream.destroy(agentError(f.header));
        }
      },
      fail: (e) => stream.destroy(e),
    });
    stream.on("close", () => {
      if (this.socket.isPaused() && this.holds === 0) this.socket.resume();
    });
    this.send({ op: "read", id, path, offset: opts.offset ?? 0, length: opts.length ?? -1 });
    return stream;
  }

  async readFileBuffer(path: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of this.readFile(path)) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  async stat(path: string, follow = true): Promise<FileStat> {
    const h = await this.request({ op: "stat", path, follow }, "stat");
    return {
      type: h["type"] as FileStat["type"],
      size: Number(h["size"]),
      mode: Number(h["mode"]),
      uid: Number(h["uid"]),
      gid: Number(h["gid"]),
      mtimeMs: Number(h["mtimeMs"]),
      target: typeof h["target"] === "string" ? h["target"] : null,
    };
  }

  list(path: string): Promise<DirEntry[]> {
    return new Promise((resolve, reject) => {
      const entries: DirEntry[] = [];
      const id = this.open({
        frame: (f) => {
          const ev = f.header["ev"];
          if (ev === "entry") {
            entries.push({
              name: String(f.header["name"]),
              type: f.header["type"] as DirEntry["type"],
              size: Number(f.header["size"]),
              mode: Number(f.header["mode"]),
              mtimeMs: Number(f.header["mtimeMs"]),
            });
            return;
          }
          this.streams.delete(id);
          if (ev === "end") resolve(entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
          else reject(agentError(f.header));
        },
        fail: reject,
      });
      this.send({ op: "list", id, path });
    });
  }

  async mkdir(path: string, opts: { parents?: boolean; mode?: number } = {}): Promise<void> {
    await this.request({ op: "mkdir", path, parents: opts.parents ?? false, mode: opts.mode ?? 0o755 }, "ok");
  }

  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    await this.request({ op: "remove", path, recursive: opts.recursive ?? false }, "ok");
  }
}

export class ExecHandle {
  constructor(
    private readonly client: AgentClient,
    readonly id: number,
    /** Resolves once the program is running. */
    readonly pid: Promise<number>,
    /** Resolves when it exits; rejects if it could not start. */
    readonly result: Promise<ExecResult>,
  ) {}

  writeStdin(data: Buffer | string): Promise<void> {
    return this.client.stdin(this.id, typeof data === "string" ? Buffer.from(data) : data);
  }

  closeStdin(): Promise<void> {
    return this.client.stdin(this.id, undefined);
  }

  /** Sends `signal` (default SIGKILL) to the command's process group. */
  kill(signal = 9): Promise<void> {
    return this.client.signal(this.id, signal);
  }

  hold(): () => void {
    return this.client.hold();
  }
}

function agentError(h: Header): Error {
  const code = typeof h["code"] === "string" ? h["code"] : "EIO";
  const msg = typeof h["message"] === "string" ? h["message"] : `agent replied ${JSON.stringify(h)}`;
  return new SandboxOperationError(code, msg);
}
