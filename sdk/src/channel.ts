import type { Socket } from "node:net";
import type WebSocket from "ws";
import type { components } from "./api-types.js";
import type { ConnectionConfig } from "./config.js";
import { CorralSdkError, errorFromResponse, SandboxError, TimeoutError } from "./errors.js";
import { parseBinaryFrame, UploadSink } from "./channel-bytes.js";

type ConnectRequest = components["schemas"]["ConnectRequest"];
/** An operationId of api/openapi.yaml, or "cancel". */
export type ConnectOp = string;
type Event = components["schemas"]["ConnectEvent"]["event"];

/**
 * Bytes of a request's events the daemon may send before this side says it
 * has consumed them (api/openapi.yaml, `connect`: flow control). Credit
 * goes back a quarter window at a time, after `onEvent` has settled on
 * the events, so a slow consumer pauses the command in the sandbox
 * instead of piling its output up here.
 */
export const WINDOW = 1024 * 1024;

/**
 * ws, loaded on the first connect: importing it (with the zlib, crypto
 * and tls modules it requires) takes ~55 ms on the bench host, more than
 * a whole `corral exec` through HTTP may; a process that never opens a
 * channel (transport "http", the corral CLI) never pays for it.
 */
let wsModule: Promise<typeof WebSocket> | undefined;
const loadWs = () => (wsModule ??= import("ws").then((m) => m.default));
/** WebSocket.OPEN, without loading ws. */
const OPEN = 1;

/** A ConnectReply: the status and JSON body the same request gets over HTTP. */
export interface Answer {
  readonly status: number;
  readonly body?: unknown;
}

/** How a request over the channel ended: a reply, or its events (exec) or bytes (connectProcess raw) all delivered. */
export type Outcome = Answer | { readonly events: true } | { readonly bytes: true };

/**
 * What a caller may do with a request under way: `cancel` gives it up
 * (the daemon stops its stream; the request rejects with `reason`), and,
 * for one sent with `upload`, `upload` writes its bytes.
 */
export interface RequestControl {
  cancel?: (reason?: Error) => void;
  upload?: UploadSink;
  /** Called once the request is on the connection (its upload may be written from then on). */
  onSent?: () => void;
}

interface Pending {
  readonly resolve: (o: Outcome) => void;
  readonly reject: (e: unknown) => void;
  readonly onEvent: ((e: Event) => unknown) | undefined;
  readonly onBytes: ((b: Buffer) => unknown) | undefined;
  readonly upload: UploadSink | undefined;
  /** Events are handed over one after the other, each awaited. */
  chain: Promise<void>;
  /** Bytes of events consumed and not yet credited back. */
  consumed: number;
  timer: NodeJS.Timeout | undefined;
  failed: boolean;
}

/**
 * The daemon's /v1/connect WebSocket (api/openapi.yaml, `connect`): one per
 * apiUrl and key, shared by every Sandbox of the process and opened on
 * first use, the way keep-alive HTTP connections are. It carries the API's
 * operations with HTTP's semantics and errors, without HTTP's per-request
 * work (this SDK sends its JSON operations and commands over it). A daemon that answers the upgrade with an HTTP error
 * (one without /v1/connect, or a proxy in between) is remembered, and its
 * requests go over HTTP. An idle channel does not keep the process alive.
 */
export class Channel {
  private static readonly open = new Map<string, Channel>();
  /** apiUrls that do not offer /v1/connect. */
  private static readonly refused = new Set<string>();

  /** The channel for a connection, or undefined when its daemon speaks only HTTP. */
  static for(config: ConnectionConfig): Channel | undefined {
    if (config.transport === "http" || Channel.refused.has(config.apiUrl)) return undefined;
    const key = `${config.apiUrl}\0${config.apiKey}`;
    let c = Channel.open.get(key);
    if (!c) Channel.open.set(key, (c = new Channel(config)));
    return c;
  }

  private ws: WebSocket | undefined;
  private opening: Promise<WebSocket | undefined> | undefined;
  private readonly pending = new Map<number, Pending>();
  private next = 1;

  private constructor(private readonly config: ConnectionConfig) {}

  /**
   * Sends one request. Resolves with its reply, or for a foreground exec
   * once `onEvent` has had (and settled on) every event up to the exit.
   * Resolves undefined when the daemon has no /v1/connect: the caller then
   * makes the request over HTTP. `timeoutMs` covers a reply, or an exec
   * until its first event (as HTTP's covers a stream until it starts).
   */
  async request(
    op: ConnectOp,
    params: Record<string, string> | undefined,
    body: unknown,
    opts: {
      timeoutMs: number;
      query?: ConnectRequest["query"];
      onEvent?: (e: Event) => unknown;
      /** The answer's bytes (binary frames), each awaited before more is credited. */
      onBytes?: (b: Buffer) => unknown;
      /** The request's bytes follow as binary frames: written through control.upload. */
      upload?: boolean;
      control?: RequestControl;
    },
  ): Promise<Outcome | undefined> {
    const ws = this.ws?.readyState === OPEN ? this.ws : await this.connect(opts.timeoutMs);
    if (!ws) return undefined;
    const id = this.next++;
    return new Promise<Outcome>((resolve, reject) => {
      const upload = opts.upload ? new UploadSink(id, WINDOW, (frame) => this.sendBinary(frame)) : undefined;
      const p: Pending = { resolve, reject, onEvent: opts.onEvent, onBytes: opts.onBytes, upload, chain: Promise.resolve(), consumed: 0, timer: undefined, failed: false };
      if (opts.control) {
        if (upload) opts.control.upload = upload;
        opts.control.cancel = (reason) => {
          if (!this.pending.has(id)) return;
          this.fail(id, reason ?? new SandboxError("cancelled", `${op}: cancelled`));
          this.send({ id: this.next++, op: "cancel", body: { request: id } });
        };
      }
      if (opts.timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.fail(id, new TimeoutError("request_timeout", `${op}: no answer within ${opts.timeoutMs} ms`));
          // Given up on: a command it may still start is not wanted any more.
          if (op === "exec") this.send({ id: this.next++, op: "cancel", body: { request: id } });
        }, opts.timeoutMs);
      }
      this.pending.set(id, p);
      this.holdOpen();
      const message: ConnectRequest = {
        id,
        op,
        ...(params ? { params } : {}),
        ...(opts.query ? { query: opts.query } : {}),
        ...(body !== undefined ? { body } : {}),
        ...(opts.upload ? { upload: true } : {}),
      };
      this.send(message);
      opts.control?.onSent?.();
    });
  }

  private connect(timeoutMs: number): Promise<WebSocket | undefined> {
    this.opening ??= loadWs().then((Ws) => this.open(Ws, timeoutMs)).finally(() => (this.opening = undefined));
    return this.opening;
  }

  private open(Ws: typeof WebSocket, timeoutMs: number): Promise<WebSocket | undefined> {
    return new Promise<WebSocket | undefined>((resolve, reject) => {
      const ws = new Ws(connectUrl(this.config.apiUrl), {
        headers: { authorization: `Bearer ${this.config.apiKey}` },
        perMessageDeflate: false,
        ...(timeoutMs > 0 ? { handshakeTimeout: timeoutMs } : {}),
      });
      let settled = false;
      ws.once("unexpected-response", (_req, res) => {
        // An HTTP answer instead of the switch: corral's own 401 is the
        // caller's error; anything else means this daemon (or what is in
        // front of it) speaks HTTP only.
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => {
          settled = true;
          ws.terminate();
          if (res.statusCode === 401) return reject(errorFromResponse(401, res.statusMessage ?? "", text));
          Channel.refused.add(this.config.apiUrl);
          resolve(undefined);
        });
      });
      ws.once("open", () => {
        settled = true;
        this.ws = ws;
        this.holdOpen();
        resolve(ws);
      });
      ws.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
        if (isBinary) this.onBinary(data as Buffer);
        else this.onMessage(data as Buffer);
      });
      ws.on("error", (e: Error & { code?: string }) => {
        if (settled) return;
        settled = true;
        reject(
          /handshake has timed out/.test(e.message)
            ? new TimeoutError("request_timeout", `connecting to corral at ${this.config.apiUrl}: no answer within ${timeoutMs} ms`)
            : new SandboxError("connection_failed", `request to corral at ${this.config.apiUrl} failed: ${e.code ?? e.message}`, 0, { cause: e }),
        );
      });
      ws.once("close", () => {
        if (this.ws === ws) this.ws = undefined;
        for (const id of [...this.pending.keys()]) this.fail(id, new SandboxError("connection_failed", `the connection to corral at ${this.config.apiUrl} closed`));
      });
    });
  }

  /** A binary frame: bytes of a request's answer, an empty one their end. */
  private onBinary(data: Buffer): void {
    const frame = parseBinaryFrame(data);
    const p = frame && this.pending.get(frame.id);
    if (!frame || !p) return;
    const id = frame.id;
    clearTimeout(p.timer);
    p.timer = undefined;
    p.chain = p.chain.then(async () => {
      if (p.failed) return;
      if (frame.payload.length === 0) return this.settle(id, { bytes: true });
      try {
        await p.onBytes?.(frame.payload);
      } catch (e) {
        this.fail(id, e);
        this.send({ id: this.next++, op: "cancel", body: { request: id } });
        return;
      }
      p.consumed += frame.payload.length;
      if (p.consumed >= WINDOW / 4) {
        this.send({ credit: id, bytes: p.consumed });
        p.consumed = 0;
      }
    });
  }

  private onMessage(data: Buffer): void {
    let m: { id?: number; status?: number; body?: unknown; event?: Event; credit?: number; bytes?: number };
    try {
      m = JSON.parse(data.toString()) as typeof m;
    } catch {
      return;
    }
    if (typeof m.credit === "number") {
      // The daemon has consumed some of an upload: the window moves on.
      this.pending.get(m.credit)?.upload?.credit(m.bytes ?? 0);
      return;
    }
    const p = m.id === undefined ? undefined : this.pending.get(m.id);
    if (!p || m.id === undefined) return; // given up on (timed out), or id 0: a message we sent that the daemon could not read
    const id = m.id;
    if (m.event) {
      clearTimeout(p.timer);
      p.timer = undefined;
      const event = m.event;
      const last = event.type === "exit" || event.type === "done" || event.type === "error";
      p.chain = p.chain.then(async () => {
        if (p.failed) return;
        try {
          await p.onEvent?.(event);
        } catch (e) {
          this.fail(id, e);
          this.send({ id: this.next++, op: "cancel", body: { request: id } });
          return;
        }
        if (last) return this.settle(id, { events: true });
        p.consumed += data.length;
        if (p.consumed >= WINDOW / 4) {
          this.send({ credit: id, bytes: p.consumed });
          p.consumed = 0;
        }
      });
      return;
    }
    // A reply: after the events before it, if any.
    p.chain = p.chain.then(() => this.settle(id, { status: m.status ?? 0, ...(m.body !== undefined ? { body: m.body } : {}) }));
  }

  private settle(id: number, o: Outcome): void {
    const p = this.pending.get(id);
    if (!p || p.failed) return;
    this.forget(id, p);
    p.resolve(o);
  }

  private fail(id: number, e: unknown): void {
    const p = this.pending.get(id);
    if (!p || p.failed) return;
    p.failed = true;
    this.forget(id, p);
    p.reject(e instanceof CorralSdkError || e instanceof Error ? e : new SandboxError("bad_response", String(e)));
  }

  private forget(id: number, p: Pending): void {
    clearTimeout(p.timer);
    this.pending.delete(id);
    p.upload?.fail(new SandboxError("request_over", "the request was answered: its upload has ended"));
    this.holdOpen();
  }

  private send(message: unknown): void {
    if (this.ws?.readyState === OPEN) this.ws.send(JSON.stringify(message));
  }

  private sendBinary(frame: Buffer): void {
    if (this.ws?.readyState === OPEN) this.ws.send(frame);
  }

  /** The socket keeps the process alive only while an answer is awaited. */
  private holdOpen(): void {
    const socket = (this.ws as unknown as { _socket?: Socket } | undefined)?._socket;
    if (!socket) return;
    if (this.pending.size > 0) socket.ref();
    else socket.unref();
  }
}

/** ws:// (wss://, ws+unix:) URL of a daemon's /v1/connect. */
export function connectUrl(apiUrl: string): string {
  if (apiUrl.startsWith("unix:")) return `ws+unix:${apiUrl.slice("unix:".length).replace(/^\/\/(?=\/)/, "")}:/v1/connect`;
  const u = new URL(apiUrl);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/v1/connect`;
  return u.toString();
}
