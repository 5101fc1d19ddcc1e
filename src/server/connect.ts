import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { InvalidArgumentError, NotFoundError } from "../core/errors.js";
import { startCommand, type ExecBody, type StartedCommand } from "./commands.js";
import { apiKeyOf, sandboxJson, type ServerContext } from "./context.js";
import { toHttpError } from "./http-errors.js";

/** What a ConnectRequest holds once checked against the spec. */
interface Request {
  readonly id: number;
  readonly op: "createSandbox" | "getSandbox" | "deleteSandbox" | "exec" | "cancel";
  readonly params?: { readonly id?: string };
  readonly body?: Record<string, unknown>;
}

type Answer = { readonly status: number; readonly body?: unknown };

export const CONNECT_PATH = "/v1/connect";
/** Requests one connection may have unanswered at once (a foreground exec counts until its exit). */
export const MAX_IN_FLIGHT = 256;

/**
 * GET /v1/connect: a WebSocket carrying createSandbox, getSandbox,
 * deleteSandbox and exec as JSON messages (api/openapi.yaml, operation
 * `connect`). Each operation runs the same code as its HTTP route, with
 * the same checks and errors; what it saves is HTTP's per-request work
 * (parsing, fastify's hooks, a response per call) on both ends: a warm-pool
 * claim and its first command take ~1.4 ms less here.
 */
export function connectChannel(
  app: FastifyInstance,
  ctx: ServerContext,
  o: { maxPayload: number; validateResponses: boolean; checkedEvent: (op: string, event: unknown) => unknown },
): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxPayload, perMessageDeflate: false });
  // Upgraded sockets would hold server.close() open: they go first.
  app.addHook("preClose", (done) => {
    for (const c of wss.clients) c.terminate();
    done();
  });
  app.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
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

/** One connection: its requests in flight, and the foreground commands it started. */
class Session {
  private readonly inFlight = new Set<number>();
  private readonly commands = new Map<number, StartedCommand>();
  /** Execs given up on (cancel) while they were still starting. */
  private readonly cancelled = new Set<number>();
  private closed = false;

  constructor(
    private readonly ctx: ServerContext,
    private readonly ws: WebSocket,
    private readonly key: string,
    private readonly tenant: string,
    private readonly checks: { readonly validateResponses: boolean; readonly checkedEvent: (op: string, event: unknown) => unknown },
    private readonly log: FastifyBaseLogger,
  ) {
    ctx.channels++;
    ws.on("message", (data, isBinary) => void this.onMessage(data, isBinary));
    ws.on("error", () => {});
    ws.on("close", () => {
      this.closed = true;
      ctx.channels--;
      // Its caller is gone: as when an HTTP client leaves mid-command.
      for (const c of this.commands.values()) c.end();
      this.commands.clear();
    });
  }

  private async onMessage(data: RawData, isBinary: boolean): Promise<void> {
    this.ctx.activity.touch();
    const t0 = performance.now();
    let req: Request;
    try {
      req = this.parse(data, isBinary);
    } catch (e) {
      return this.answer((e as { requestId?: number }).requestId ?? 0, undefined, errorAnswer(e), t0);
    }
    try {
      // Every message, not just the upgrade: a key revoked meanwhile stops here.
      this.ctx.sandboxes.tenants.authenticate(this.key);
    } catch (e) {
      this.answer(req.id, req.op, errorAnswer(e), t0);
      this.ws.close(1008, "the API key is not valid any more");
      return;
    }
    if (this.inFlight.size >= MAX_IN_FLIGHT) {
      return this.answer(req.id, req.op, { status: 429, body: { error: { code: "too_many_requests", message: `at most ${MAX_IN_FLIGHT} requests may be unanswered on one connection` } } }, t0);
    }
    this.inFlight.add(req.id);
    let answer: Answer | undefined;
    try {
      answer = await this.run(req, t0);
    } catch (e) {
      answer = errorAnswer(e);
      if (answer.status >= 500) this.log.error({ err: e, op: req.op }, "request failed");
    }
    if (answer) this.answer(req.id, req.op, answer, t0);
    else this.inFlight.delete(req.id);
  }

  private parse(data: RawData, isBinary: boolean): Request {
    if (isBinary) throw new InvalidArgumentError("/v1/connect messages are JSON text, not binary");
    let value: unknown;
    try {
      value = JSON.parse(data.toString());
    } catch {
      throw new InvalidArgumentError("a /v1/connect message is not JSON");
    }
    const problems = this.ctx.openapi.checkSchema("ConnectRequest", value);
    if (problems.length) {
      const id = (value as { id?: unknown } | null)?.id;
      const err = new InvalidArgumentError(`invalid message: ${problems.map((p) => `${p.path || "(message)"}: ${p.message}`).join("; ")}`);
      throw Object.assign(err, { requestId: typeof id === "number" && Number.isSafeInteger(id) && id > 0 ? id : 0 });
    }
    const r = value as Request;
    if (this.inFlight.has(r.id)) throw Object.assign(new InvalidArgumentError(`request ${r.id} is still being answered: ids must be unique among unanswered requests`), { requestId: 0 });
    return r;
  }

  /** Runs one request; undefined when it was answered with events (a foreground exec). */
  private async run(req: Request, t0: number): Promise<Answer | undefined> {
    const s = this.ctx.sandboxes;
    const scope = { tenant: this.tenant };
    const body = req.body ?? {};
    const invalid = req.op === "cancel" ? undefined : this.ctx.openapi.requestBodyError(req.op, body);
    if (invalid) throw invalid;
    const ref = () => {
      const id = req.params?.id;
      if (id === undefined) throw new InvalidArgumentError(`${req.op} needs params.id (the sandbox's id or name)`);
      return id;
    };
    switch (req.op) {
      case "createSandbox": {
        const sb = await s.create(body, scope);
        return { status: 201, body: sandboxJson(sb) };
      }
      case "getSandbox":
        return { status: 200, body: sandboxJson(await s.get(ref(), scope)) };
      case "deleteSandbox":
        await s.destroy(ref(), scope, "deleted through the API");
        return { status: 204 };
      case "cancel": {
        const target = (body as { request?: unknown }).request;
        const c = typeof target === "number" ? this.commands.get(target) : undefined;
        if (c) c.end();
        else if (typeof target === "number" && this.inFlight.has(target)) this.cancelled.add(target); // ended once it has started
        else throw new NotFoundError("request", String(target));
        return { status: 204 };
      }
      case "exec":
        return this.exec(req.id, ref(), body as ExecBody, t0);
    }
  }

  /** A foreground command's events as they come (start first), the exit or error last; a background one's start as its answer. */
  private async exec(id: number, ref: string, body: ExecBody, t0: number): Promise<Answer | undefined> {
    let started = false;
    const early: Record<string, unknown>[] = [];
    const cmd = await startCommand(this.ctx, this.tenant, ref, body, (event) => {
      if (started) this.event(id, event);
      else early.push(event);
    });
    if (cmd.background) return { status: 200, body: { type: "start", pid: cmd.pid } };
    if (this.closed || this.cancelled.delete(id)) cmd.end();
    this.commands.set(id, cmd);
    started = true;
    // Start, what came before it, and (a short command) the exit, in one frame each.
    this.event(id, { type: "start", pid: cmd.pid });
    for (const e of early.splice(0)) this.event(id, e);
    void cmd.finished.then((event) => {
      this.commands.delete(id);
      this.inFlight.delete(id);
      this.event(id, event);
      this.ctx.observe("exec", 200, (performance.now() - t0) / 1000);
      this.ctx.activity.touch();
    });
    return undefined;
  }

  private event(id: number, event: Record<string, unknown>): void {
    this.send({ id, event: this.checks.checkedEvent("exec", event) });
  }

  private answer(id: number, op: string | undefined, a: Answer, t0: number): void {
    this.inFlight.delete(id);
    this.cancelled.delete(id);
    let reply: Answer = a;
    if (this.checks.validateResponses && op && op !== "cancel") {
      const problems = this.ctx.openapi.checkResponse(op, a.status, "application/json", a.body);
      if (problems.length) reply = { status: 500, body: { error: { code: "internal", message: `response did not match the spec: ${problems.join("; ")}` } } };
    }
    this.send(reply.body === undefined ? { id, status: reply.status } : { id, status: reply.status, body: reply.body });
    if (op) this.ctx.observe(op, reply.status, (performance.now() - t0) / 1000);
    this.ctx.activity.touch();
  }

  private send(message: unknown): void {
    if (!this.closed) this.ws.send(JSON.stringify(message));
  }
}

function errorAnswer(e: unknown): Answer {
  return toHttpError(e);
}
