import type { Duplex } from "node:stream";
import { encodeFrame, FrameDecoder, ProtocolError, type Header } from "../../agent/protocol.js";

/** Ops that continue a stream the client opened earlier (docs/protocol.md). */
const CONTINUATIONS = new Set(["stdin", "data", "end", "close", "credit"]);
/** Agent messages that do not end their stream. */
const ONGOING = new Set(["started", "stdout", "stderr", "data", "entry", "credit"]);
/** Stop reading the agent while one client has this much unsent. */
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
 * connection: SIGKILL to its execs that are not keepAlive, and open writes
 * are ended; late output for its streams is dropped.
 */
export class AgentMux {
  private readonly routes = new Map<number, Route>();
  private readonly clients = new Set<Client>();
  private readonly decoder = new FrameDecoder();
  private nextId = 1;
  private upstreamClosed = false;

  constructor(private readonly upstream: Duplex) {
    upstream.on("data", (chunk: Buffer) => this.fromAgent(chunk));
    upstream.on("close", () => this.upstreamGone());
    upstream.on("error", () => this.upstreamGone());
  }

  get clientCount(): number {
    return this.clients.size;
  }

  attach(sock: Duplex): void {
    const c: Client = { sock, decoder: new FrameDecoder(), open: new Map(), closed: false };
    if (this.upstreamClosed) {
      sock.destroy();
      return;
    }
    this.clients.add(c);
    sock.on("data", (chunk: Buffer) => this.fromClient(c, chunk));
    sock.on("drain", () => this.maybeResume());
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
      if (op === "signal" && Number.isInteger(header["target"])) {
        // A target the client has no open exec for must not reach another client's exec.
        out["target"] = c.open.get(header["target"] as number) ?? 0;
      }
      this.upstream.write(encodeFrame(out as Header, payload));
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
    if (c.sock.writableLength > HIGH_WATER) this.upstream.pause();
  }

  private maybeResume(): void {
    for (const c of this.clients) if (c.sock.writableLength > HIGH_WATER) return;
    this.upstream.resume();
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
      } else if (r.op === "write") {
        this.upstream.write(encodeFrame({ op: "end", id: globalId }));
      } else if (r.op === "connect") {
        this.upstream.write(encodeFrame({ op: "close", id: globalId }));
        this.routes.delete(globalId);
      }
      // The route stays until the agent ends the stream, so late output is dropped, not misrouted.
    }
    c.open.clear();
    c.sock.destroy();
    this.maybeResume();
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
