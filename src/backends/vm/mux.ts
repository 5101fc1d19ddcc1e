import type { Duplex } from "node:stream";
import { encodeFrame, FrameDecoder, ProtocolError, type Header } from "../../agent/protocol.js";

/** Ops that continue a stream the client opened earlier (docs/protocol.md). */
const CONTINUATIONS = new Set(["stdin", "data", "end", "close", "credit"]);
/** Agent messages that do not end their stream. */
const ONGOING = new Set(["started", "stdout", "stderr", "data", "entry", "watching", "fsevent", "credit"]);
/** Streams the agent keeps until they are ended: ended for a client that goes. */
const ENDED_BY_END = new Set(["write", "attach", "watch"]);
/** Ops whose `target` names one of the sender's exec (or attach) streams. */
const TARGETED = new Set(["signal", "resize"]);
/** A client with this much unsent has its streams paused at the agent (the flow op) until it has read it all. */
const HIGH_WATER = 1024 * 1024;
const MAX_ID = 0x7fffffff;

interface Route {
  readonly client: Client;
  readonly localId: number;
  readonly op: string;
  readonly keepAlive: boolean;
}

interface Client {
  readonly sock: Duplex;
  readonly decoder: FrameDecoder;
  /** local stream id -> global id, while the stream is open */
  readonly open: Map<number, number>;
  closed: boolean;
  /** Its streams are paused at the agent: it has more than HIGH_WATER unsent. */
  paused: boolean;
}

/**
 * Many host connections over the one byte stream a microVM has to its agent
 * (a virtio-serial port). The agent protocol already multiplexes streams by
 * id on a connection, so the mux only renames ids: each client's stream ids
 * become ids unique on the upstream connection, and the agent's answers are
 * routed back under the client's own id. Every client frame is parsed and
 * re-encoded, so a client that breaks framing loses only its own
 * connection, never the shared one.
 *
 * When a client goes away the mux does what the agent does for a lost
 * connection: SIGKILL to its execs that are not keepAlive, and its open
 * writes, attach streams and watches are ended; late output for its
 * streams is dropped. A `signal` or `resize` by `target` reaches only the
 * sender's own streams; by `pid` (and `stdin` by pid) it reaches any
 * command in the guest, as it would on the agent's own socket: every
 * client is a process of the host.
 */
export class AgentMux {
  private readonly routes = new Map<number, Route>();
  private readonly clients = new Set<Client>();
  private readonly decoder = new FrameDecoder();
  private nextId = 1;
  private upstreamClosed = false;
  /**
   * Whether the agent has the flow op (corral-agent/0.2 on): asked with a
   * hello when the first client comes (a VM restored from an older
   * snapshot runs an older agent). Until it is known, or without it, a
   * client that falls behind pauses the whole upstream, as before.
   */
  private flowOp: boolean | undefined;
  private helloId = 0;
  private upstreamPaused = false;

  constructor(private readonly upstream: Duplex) {
    upstream.on("data", (chunk: Buffer) => this.fromAgent(chunk));
    upstream.on("close", () => this.upstreamGone());
    upstream.on("error", () => this.upstreamGone());
  }

  get clientCount(): number {
    return this.clients.size;
  }

  attach(sock: Duplex): void {
    const c: Client = { sock, decoder: new FrameDecoder(), open: new Map(), closed: false, paused: false };
    if (this.upstreamClosed) {
      sock.destroy();
      return;
    }
    this.clients.add(c);
    if (!this.helloId) {
      this.helloId = this.allocate();
      this.upstream.write(encodeFrame({ op: "hello", id: this.helloId }));
    }
    sock.on("data", (chunk: Buffer) => this.fromClient(c, chunk));
    sock.on("drain", () => this.flow(c, false));
    sock.on("close", () => this.detach(c));
    sock.on("error", () => this.detach(c));
  }

  close(): void {
    for (const c of [...this.clients]) c.sock.destroy();
    this.upstream.destroy();
  }

  private fromClient(c: Client, chunk: Buffer): void {
    let frames;
    try {
      frames = c.decoder.push(chunk);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      c.sock.end(encodeFrame({ ev: "error", id: 0, code: "EPROTO", message: e.message }));
      this.detach(c);
      return;
    }
    for (const { header, payload } of frames) {
      const id = header["id"];
      const op = header["op"];
      if (!Number.isInteger(id) || (id as number) < 1 || (id as number) > MAX_ID || typeof op !== "string") {
        this.toClient(c, encodeFrame({ ev: "error", id: 0, code: "EPROTO", message: "a request needs an op and an id 1..2^31-1" }));
        continue;
      }
      const localId = id as number;
      let globalId = c.open.get(localId);
      if (op === "stdin" && Number.isInteger(header["pid"])) {
        // By pid: it opens no stream and has no reply (docs/protocol.md).
        this.upstream.write(encodeFrame({ ...header, id: this.allocate() }, payload));
        continue;
      }
      if (CONTINUATIONS.has(op)) {
        if (globalId === undefined) continue; // the agent drops these for unknown streams too
      } else {
        if (globalId !== undefined) {
          this.toClient(c, encodeFrame({ ev: "error", id: localId, code: "EPROTO", message: "stream id already open" }));
          continue;
        }
        globalId = this.allocate();
        c.open.set(localId, globalId);
        this.routes.set(globalId, { client: c, localId, op, keepAlive: header["keepAlive"] === true });
      }
      const out: Record<string, unknown> = { ...header, id: globalId };
      if (op === "close") {
        // A TCP stream the client is done with (the agent answers nothing).
        this.routes.delete(globalId);
        c.open.delete(localId);
      }
      if (TARGETED.has(op) && Number.isInteger(header["target"])) {
        // A target the client has no open exec for must not reach another client's exec.
        out["target"] = c.open.get(header["target"] as number) ?? 0;
      }
      this.upstream.write(encodeFrame(out as Header, payload));
      // A stream opened while its client is behind starts paused.
      if (c.paused && this.flowOp && !CONTINUATIONS.has(op)) this.upstream.write(encodeFrame({ op: "flow", id: globalId, pause: true }));
    }
  }

  private fromAgent(chunk: Buffer): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch {
      this.upstream.destroy(); // the agent broke framing: nothing on this stream can be trusted
      return;
    }
    for (const { header, payload } of frames) {
      const globalId = header["id"] as number;
      if (globalId === this.helloId && this.flowOp === undefined) {
        const m = /^corral-agent\/(\d+)\.(\d+)/.exec(String(header["agent"] ?? ""));
        this.flowOp = !!m && (Number(m[1]) > 0 || Number(m[2]) >= 2);
        continue;
      }
      const route = this.routes.get(globalId);
      if (!route) continue;
      const ev = header["ev"];
      // A TCP stream (connect) lives until an error or the client's close: its "end" is one direction's.
      const done = typeof ev !== "string" || (route.op === "connect" ? ev === "error" : !ONGOING.has(ev));
      if (done) {
        this.routes.delete(globalId);
        if (route.client.open.get(route.localId) === globalId) route.client.open.delete(route.localId);
      }
      if (!route.client.closed) this.toClient(route.client, encodeFrame({ ...header, id: route.localId }, payload));
    }
  }

  private toClient(c: Client, frame: Buffer): void {
    if (c.closed) return;
    c.sock.write(frame);
    if (c.sock.writableLength > HIGH_WATER) this.flow(c, true);
  }

  /**
   * Pauses (or resumes) every stream of a client that fell behind, at the
   * agent: the others' streams on the one upstream go on. What the agent
   * had already sent still arrives (at most its 1 MiB of unsent output
   * and what is in the channel), so a client's backlog stays bounded.
   */
  private flow(c: Client, pause: boolean): void {
    if (c.paused === pause || this.upstreamClosed) return;
    c.paused = pause;
    if (this.flowOp) {
      for (const globalId of c.open.values()) this.upstream.write(encodeFrame({ op: "flow", id: globalId, pause }));
    }
    // Without the flow op (an older agent, or not known yet): the whole upstream waits for the slowest client.
    const behind = [...this.clients].some((x) => x.paused && !x.closed);
    if (behind && !this.flowOp && !this.upstreamPaused) this.upstream.pause();
    if (!behind && this.upstreamPaused) this.upstream.resume();
    this.upstreamPaused = behind && !this.flowOp;
  }

  private detach(c: Client): void {
    if (c.closed) return;
    c.closed = true;
    this.clients.delete(c);
    for (const globalId of c.open.values()) {
      const r = this.routes.get(globalId);
      if (!r || this.upstreamClosed) continue;
      if (r.op === "exec" && !r.keepAlive) {
        this.upstream.write(encodeFrame({ op: "signal", id: this.allocate(), target: globalId, signal: 9 }));
      } else if (ENDED_BY_END.has(r.op)) {
        this.upstream.write(encodeFrame({ op: "end", id: globalId }));
      } else if (r.op === "connect") {
        this.upstream.write(encodeFrame({ op: "close", id: globalId }));
        this.routes.delete(globalId);
      }
      // The route stays until the agent ends the stream, so late output is dropped, not misrouted.
    }
    c.open.clear();
    c.sock.destroy();
    this.flow(c, false);
  }

  private upstreamGone(): void {
    if (this.upstreamClosed) return;
    this.upstreamClosed = true;
    for (const c of [...this.clients]) c.sock.destroy();
  }

  /** A global id no open stream uses (ids wrap at 2^31-1). */
  private allocate(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= MAX_ID ? 1 : id + 1;
      if (!this.routes.has(id)) return id;
    }
  }
}
