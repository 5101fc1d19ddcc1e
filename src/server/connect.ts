import type { IncomingMessage } from "node:http";
import type { Duplex, Readable } from "node:stream";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { InvalidArgumentError, NotFoundError } from "../core/errors.js";
import { apiKeyOf, type ServerContext } from "./context.js";
import { binaryFrame, CHUNK, IncomingUpload, Outgoing, parseBinaryFrame, type Source } from "./connect-flow.js";
import { checkedRequest, JSON_TYPE, logRequest } from "./dispatch.js";
import { toHttpError } from "./http-errors.js";
import type { ParamChecker } from "./openapi-params.js";
import type { Answer, EventStream, Handler } from "./operations/types.js";

/** What a ConnectRequest holds once checked against the spec. */
interface Request {
  readonly id: number;
  readonly op: string;
  readonly params?: Record<string, unknown>;
  readonly query?: Record<string, unknown>;
  readonly body?: unknown;
  readonly upload?: boolean;
}

/** A request being answered: what a cancel or a closing connection must stop, and what its log line says. */
interface Flight {
  readonly op: string;
  readonly t0: number;
  sandbox: string | undefined;
  upload: IncomingUpload | undefined;
  out: Outgoing | undefined;
  /** Stops its stream (kills a foreground command); set once the stream has started. */
  abort: (() => void) | undefined;
  cancelled: boolean;
}

type Reply = { readonly status: number; readonly body?: unknown; readonly type?: string };

export const CONNECT_PATH = "/v1/connect";
/** Requests one connection may have unanswered at once (a stream counts until its end). */
export const MAX_IN_FLIGHT = 256;
/** Uploads one connection may have at once: what waits for their handlers is at most this many windows (16 MiB). */
export const MAX_UPLOADS = 16;

export interface ChannelOptions {
  readonly params: ParamChecker;
  readonly table: ReadonlyMap<string, Handler>;
  readonly maxPayload: number;
  readonly validateResponses: boolean;
  readonly checkedEvent: (op: string, event: unknown) => unknown;
}

/**
 * GET /v1/connect: a WebSocket carrying every operation of the table
 * (api/openapi.yaml, operation `connect`), each through the same handler
 * and checks as over HTTP; what it saves is HTTP's per-request work on
 * both ends (a warm-pool claim and its first command take ~1.4 ms less).
 */
export function connectChannel(app: FastifyInstance, ctx: ServerContext, o: ChannelOptions): void {
  // A binary frame carries up to CHUNK bytes whatever the JSON body limit.
  const wss = new WebSocketServer({ noServer: true, maxPayload: Math.max(o.maxPayload, CHUNK + 8), perMessageDeflate: false });
  // Upgraded sockets would hold server.close() open: they go first.
  app.addHook("preClose", (done) => {
    for (const c of wss.clients) c.terminate();
    done();
  });
  app.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
    if (ctx.portProxy?.claims(req)) return; // a sandbox's port: the port proxy's upgrade
    if ((req.url ?? "").split("?")[0] !== CONNECT_PATH) return refuse(socket, 404, "route_not_found", `no WebSocket at ${(req.url ?? "").split("?")[0]}`);
    const key = apiKeyOf(req.headers);
    let tenant: string;
    try {
      tenant = ctx.sandboxes.tenants.authenticate(key);
    } catch (e) {
      const { status, body } = toHttpError(e);
      return refuse(socket, status, body.error.code, body.error.message);
    }
    wss.handleUpgrade(req, socket, head, (ws) => new Session(ctx, ws, key!, tenant, o, app.log));
  });
}

/** Answers an upgrade it will not make with a plain HTTP error, as the API would. */
function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const reason = status === 401 ? "Unauthorized" : status === 404 ? "Not Found" : "Error";
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** One connection: its requests in flight and their streams. */
class Session {
  private readonly flights = new Map<number, Flight>();
  /** Outgoing streams paused for credit or a full socket. */
  private readonly waiting = new Set<Outgoing>();
  private closed = false;
  /** After each write to the socket: streams paused for a full socket may go on once it has drained. */
  private readonly onSent = () => {
    if (this.waiting.size === 0) return;
    for (const out of [...this.waiting]) out.check();
  };

  constructor(
    private readonly ctx: ServerContext,
    private readonly ws: WebSocket,
    private readonly key: string,
    private readonly tenant: string,
    private readonly o: ChannelOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    ctx.channels++;
    ws.on("message", (data, isBinary) => (isBinary ? this.onBinary(data as Buffer) : void this.onText(data)));
    ws.on("error", () => {});
    ws.on("close", () => {
      this.closed = true;
      ctx.channels--;
      // Its caller is gone: as when an HTTP client leaves mid-stream. Each
      // request still ends (and is logged) as its handler or stream does.
      for (const f of this.flights.values()) this.stop(f, new InvalidArgumentError("the connection closed"));
      this.waiting.clear();
    });
  }

  private onBinary(data: Buffer): void {
    const frame = parseBinaryFrame(data);
    // Frames of a request answered already (an upload refused halfway) are dropped.
    if (frame) this.flights.get(frame.id)?.upload?.push(frame.payload);
  }

  private async onText(data: RawData): Promise<void> {
    this.ctx.activity.touch();
    const t0 = performance.now();
    let value: unknown;
    try {
      value = JSON.parse(data.toString());
    } catch {
      return this.refused(0, undefined, toHttpError(new InvalidArgumentError("a /v1/connect text message is not JSON")), t0);
    }
    if (typeof value === "object" && value !== null && "credit" in value) return this.onCredit(value);
    let req: Request;
    try {
      req = this.parse(value);
    } catch (e) {
      return this.refused((e as { requestId?: number }).requestId ?? 0, undefined, toHttpError(e), t0);
    }
    try {
      // Every request, not just the upgrade: a key revoked meanwhile stops here.
      this.ctx.sandboxes.tenants.authenticate(this.key);
    } catch (e) {
      this.refused(req.id, req.op, toHttpError(e), t0);
      this.ws.close(1008, "the API key is not valid any more");
      return;
    }
    if (this.flights.size >= MAX_IN_FLIGHT) {
      const message = `at most ${MAX_IN_FLIGHT} requests may be unanswered on one connection`;
      return this.refused(req.id, req.op, { status: 429, body: { error: { code: "too_many_requests", message } } }, t0);
    }
    if (req.upload && [...this.flights.values()].filter((f) => f.upload).length >= MAX_UPLOADS) {
      const message = `at most ${MAX_UPLOADS} uploads may be under way on one connection`;
      return this.refused(req.id, req.op, { status: 429, body: { error: { code: "too_many_requests", message } } }, t0);
    }
    const flight: Flight = { op: req.op, t0, sandbox: undefined, upload: undefined, out: undefined, abort: undefined, cancelled: false };
    this.flights.set(req.id, flight);
    try {
      if (req.op === "cancel") return this.finish(req.id, this.cancel(req.body));
      await this.run(req, flight);
    } catch (e) {
      const r = toHttpError(e);
      if (r.status >= 500) this.log.error({ err: e, op: req.op }, "request failed");
      this.finish(req.id, r);
    }
  }

  private onCredit(value: object): void {
    const problems = this.ctx.openapi.checkSchema("ConnectCredit", value);
    if (problems.length) return this.reply(0, toHttpError(new InvalidArgumentError(`invalid credit: ${problems.map((p) => `${p.path || "(message)"}: ${p.message}`).join("; ")}`)));
    const { credit, bytes } = value as { credit: number; bytes: number };
    this.flights.get(credit)?.out?.credit(bytes);
  }

  private parse(value: unknown): Request {
    const problems = this.ctx.openapi.checkSchema("ConnectRequest", value);
    if (problems.length) {
      const id = (value as { id?: unknown } | null)?.id;
      const err = new InvalidArgumentError(`invalid message: ${problems.map((p) => `${p.path || "(message)"}: ${p.message}`).join("; ")}`);
      throw Object.assign(err, { requestId: typeof id === "number" && Number.isSafeInteger(id) && id > 0 ? id : 0 });
    }
    const r = value as Request;
    if (this.flights.has(r.id)) throw Object.assign(new InvalidArgumentError(`request ${r.id} is still being answered: ids must be unique among unanswered requests`), { requestId: 0 });
    if (r.op !== "cancel" && !this.o.table.has(r.op)) {
      throw Object.assign(new InvalidArgumentError(`unknown op ${JSON.stringify(r.op)}: /v1/connect carries the operations of api/openapi.yaml, and cancel`), { requestId: r.id });
    }
    return r;
  }

  /** Checks and runs one request through the operation table, then sends its answer. */
  private async run(req: Request, flight: Flight): Promise<void> {
    const op = this.ctx.openapi.operation(req.op);
    if (req.upload) flight.upload = new IncomingUpload((bytes) => this.send(JSON.stringify({ credit: req.id, bytes })));
    const upload = flight.upload && { stream: flight.upload.stream as Readable, length: undefined, discard: () => flight.upload?.discard() };
    const bodyType = req.upload ? (op.bodyTypes.find((t) => t !== JSON_TYPE) ?? "application/octet-stream") : req.body !== undefined ? JSON_TYPE : undefined;
    if (op.path.startsWith("/v1/sandboxes/{id}")) flight.sandbox = String(req.params?.["id"] ?? "");
    const r = checkedRequest(this.ctx, this.o.params, op, {
      params: req.params ?? {},
      query: req.query ?? {},
      bodyType,
      body: req.body,
      upload,
      tenant: this.tenant,
      operator: this.ctx.sandboxes.tenants.isOperator(this.key),
      log: this.log,
    });
    const answer: Answer = await this.o.table.get(op.id)!(this.ctx, r);
    flight.sandbox = r.sandbox ?? flight.sandbox;
    if ("events" in answer) return this.events(req.id, flight, answer.events);
    if ("bytes" in answer) return this.bytes(req.id, flight, answer.bytes);
    this.finish(req.id, answer);
  }

  /** NDJSON events, one ConnectEvent each; the stream pauses for credit. */
  private events(id: number, flight: Flight, events: EventStream): void {
    flight.out = new Outgoing(events, () => this.ws.bufferedAmount, this.waiting);
    flight.abort = () => events.cancel();
    // Given up on (cancel, a closed connection) while it was starting: stopped now, its last events still sent.
    if (flight.cancelled || this.closed) events.cancel();
    const send = (e: unknown) => {
      const text = JSON.stringify({ id, event: this.o.checkedEvent(flight.op, e) });
      this.send(text);
      flight.out?.sentBytes(Buffer.byteLength(text));
    };
    events.start({
      event: send,
      end: (last) => {
        send(last);
        this.done(id, flight, 200);
      },
    });
  }

  /** Bytes as binary frames of at most CHUNK, an empty one last; an error ends them instead. */
  private bytes(id: number, flight: Flight, stream: Readable): void {
    const source: Source = { pause: () => stream.pause(), resume: () => stream.resume() };
    flight.out = new Outgoing(source, () => this.ws.bufferedAmount, this.waiting);
    let ended = false;
    flight.abort = () => {
      if (!ended) stream.destroy(Object.assign(new Error("cancelled"), { cancelled: true }));
    };
    stream.on("data", (chunk: Buffer) => {
      for (let o = 0; o < chunk.length; o += CHUNK) {
        const piece = chunk.subarray(o, o + CHUNK);
        this.send(binaryFrame(id, piece));
        flight.out?.sentBytes(piece.length);
      }
    });
    stream.once("end", () => {
      ended = true;
      this.send(binaryFrame(id));
      this.done(id, flight, 200);
    });
    stream.once("error", (e: Error & { cancelled?: boolean }) => {
      ended = true;
      const r = e.cancelled ? { status: 499, body: { error: { code: "cancelled", message: `request ${id} was cancelled` } } } : toHttpError(e);
      this.finish(id, r);
    });
    stream.once("close", () => {
      if (!ended) this.finish(id, toHttpError(new Error("the stream closed before its end")));
      ended = true;
    });
    if (flight.cancelled || this.closed) flight.abort();
  }

  /** `cancel`: gives up request N (a foreground command is killed, a stream stopped). */
  private cancel(body: unknown): Reply {
    const target = (body as { request?: unknown } | undefined)?.request;
    const f = typeof target === "number" ? this.flights.get(target) : undefined;
    if (!f || f.op === "cancel") throw new NotFoundError("request", String(target));
    this.stop(f, new InvalidArgumentError(`request ${String(target)} was cancelled`));
    return { status: 204 };
  }

  private stop(f: Flight, why: Error): void {
    f.cancelled = true;
    f.upload?.discard(why);
    f.abort?.();
  }

  /** Sends a request's one reply and forgets it. */
  private finish(id: number, a: Reply): void {
    const f = this.flights.get(id);
    if (!f) return;
    let r: Reply = a;
    if (this.o.validateResponses && f.op !== "cancel") {
      const problems = this.ctx.openapi.checkResponse(f.op, a.status, a.type ?? "application/json", a.body);
      if (problems.length) r = { status: 500, body: { error: { code: "internal", message: `response did not match the spec: ${problems.join("; ")}` } } };
    }
    this.reply(id, r);
    this.done(id, f, r.status);
  }

  /** A message answered before it became a request in flight (not JSON, not a ConnectRequest, a revoked key, too many): answered and logged. */
  private refused(id: number, op: string | undefined, r: Reply, t0: number): void {
    this.reply(id, r);
    this.ctx.activity.touch();
    logRequest(this.log, { transport: "connect", method: "-", operation: op ?? "none", status: r.status, ms: performance.now() - t0, tenant: this.tenant, sandbox: undefined });
  }

  private reply(id: number, r: Reply): void {
    this.send(JSON.stringify(r.body === undefined ? { id, status: r.status } : { id, status: r.status, body: r.body }));
  }

  /** The request is over: its upload is dropped, its log line written, its metrics counted. */
  private done(id: number, f: Flight, status: number): void {
    if (this.flights.get(id) !== f) return;
    this.flights.delete(id);
    f.upload?.discard();
    f.out?.close();
    const ms = performance.now() - f.t0;
    this.ctx.observe(f.op, status, ms / 1000);
    this.ctx.activity.touch();
    const method = f.op === "cancel" ? "CANCEL" : this.ctx.openapi.operation(f.op).method.toUpperCase();
    logRequest(this.log, { transport: "connect", method, operation: f.op, status, ms, tenant: this.tenant, sandbox: f.sandbox });
  }

  private send(message: string | Buffer): void {
    if (!this.closed) this.ws.send(message, this.onSent);
  }
}
