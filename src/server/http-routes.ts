import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Readable } from "node:stream";
import type { ServerContext } from "./context.js";
import { checkedRequest, JSON_TYPE } from "./dispatch.js";
import type { Operation } from "./openapi.js";
import type { ParamChecker } from "./openapi-params.js";
import type { Answer, EventStream, Handler } from "./operations/types.js";

/**
 * The HTTP transport: one fastify route per operation of the spec (its
 * method, its path with `{id}` as `:id`), each handing a checked request
 * to the operation's handler and writing its answer: JSON or text, NDJSON
 * events, or bytes.
 */
export function registerHttpRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  params: ParamChecker,
  table: ReadonlyMap<string, Handler>,
  checkedEvent: (op: string, event: unknown) => unknown,
): void {
  // Any body that is not JSON reaches the operation as a stream: bytes go
  // to the agent as they arrive, and a type the operation does not take is
  // refused by its name (415) rather than by fastify's generic message.
  app.addContentTypeParser("*", (_req, payload, done) => done(null, payload));
  for (const op of ctx.openapi.operations()) {
    const handler = table.get(op.id)!;
    app.route({
      method: op.method.toUpperCase() as "GET",
      url: op.path.replace(/\{([^}]+)\}/g, ":$1"),
      config: { operationId: op.id },
      handler: async (req, reply) => {
        const incoming = {
          params: req.params as Record<string, unknown>,
          query: req.query as Record<string, unknown>,
          ...bodyOf(req),
          tenant: req.tenant ?? "",
          operator: req.operator === true,
          log: req.log,
        };
        if (op.path.startsWith("/v1/sandboxes/{id}")) req.sandbox = String(incoming.params["id"]);
        const r = checkedRequest(ctx, params, op, incoming);
        const answer = await handler(ctx, r);
        req.sandbox = r.sandbox ?? req.sandbox;
        return send(reply, op, answer, checkedEvent);
      },
    });
  }
}

function bodyOf(req: FastifyRequest): { bodyType: string | undefined; body: unknown; upload: undefined | { stream: Readable; length: number | undefined; discard: () => void } } {
  const header = req.headers["content-type"];
  if (header === undefined) return { bodyType: undefined, body: undefined, upload: undefined };
  const bodyType = header.split(";")[0]!.trim().toLowerCase();
  if (bodyType === JSON_TYPE || typeof (req.body as Readable | undefined)?.pipe !== "function") return { bodyType, body: req.body, upload: undefined };
  const stream = req.body as Readable;
  const declared = Number(req.headers["content-length"]);
  return { bodyType, body: undefined, upload: { stream, length: Number.isFinite(declared) ? declared : undefined, discard: () => lingerThenClose(stream) } };
}

function send(reply: FastifyReply, op: Operation, answer: Answer, checkedEvent: (op: string, event: unknown) => unknown): FastifyReply {
  if ("events" in answer) return sendEvents(reply, op.id, answer.events, checkedEvent);
  if ("bytes" in answer) return reply.code(200).type(answer.type).send(answer.bytes);
  reply.code(answer.status);
  if (answer.type) reply.type(answer.type);
  return reply.send(answer.body);
}

/**
 * NDJSON written straight to the socket (fastify still runs its onResponse
 * hooks), each event as it comes. A socket that will not take more
 * (write() false) pauses the stream until it drains; a client that goes
 * away before the end cancels it (a foreground command is killed).
 */
function sendEvents(reply: FastifyReply, op: string, events: EventStream, checkedEvent: (op: string, event: unknown) => unknown): FastifyReply {
  reply.hijack();
  const raw = reply.raw;
  let open = true;
  raw.on("close", () => {
    if (raw.writableFinished) return;
    open = false;
    events.cancel();
  });
  // It may have left while the operation was starting, before there was a listener.
  if (!raw.socket || raw.socket.destroyed) {
    open = false;
    events.cancel();
    return reply;
  }
  // Corked until this tick's promise callbacks have run: a command that
  // already ended (the agent sends its start with its exit) is answered in
  // a single write, head, start and exit together.
  const socket = raw.socket;
  socket.cork();
  process.nextTick(() => socket.uncork());
  raw.writeHead(200, { "content-type": "application/x-ndjson" });
  const line = (e: unknown) => `${JSON.stringify(checkedEvent(op, e))}\n`;
  let paused = false;
  events.start({
    event(e) {
      if (!open || raw.write(line(e)) || paused) return;
      paused = true;
      events.pause();
      raw.once("drain", () => {
        paused = false;
        events.resume();
      });
    },
    end(last) {
      if (open) raw.end(line(last));
    },
  });
  return reply;
}

const LINGER_MS = 2000;
const LINGER_BYTES = 256 * 1024 * 1024;

/**
 * Gets rid of a body the operation will not read (an upload that failed
 * with ENOSPC, say). Closing at once (or answering "Connection: close",
 * after which Node destroys the socket as soon as the answer is written)
 * resets the connection under a client still sending, which may then
 * never read the error. So the answer goes out on an open connection, the
 * body is read and discarded for a bounded while (lingering close:
 * LINGER_MS or LINGER_BYTES), then the connection is cut.
 */
function lingerThenClose(req: Readable): void {
  let seen = 0;
  const stop = () => {
    clearTimeout(timer);
    req.destroy();
  };
  const timer = setTimeout(stop, LINGER_MS);
  req.on("data", (c: Buffer) => {
    seen += c.length;
    if (seen > LINGER_BYTES) stop();
  });
  req.once("end", () => clearTimeout(timer));
  req.once("close", () => clearTimeout(timer));
  req.resume();
}
