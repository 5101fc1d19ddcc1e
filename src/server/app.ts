import http from "node:http";
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { Sandboxes } from "../runtime/sandboxes.js";
import { AuthError } from "../core/errors.js";
import { toHttpError } from "./http-errors.js";
import { OpenApi } from "./openapi.js";
import { Activity } from "./activity.js";
import { apiKeyOf, type ServerContext } from "./context.js";
import { healthRoutes } from "./routes/health.js";
import { metricsRoutes } from "./metrics.js";
import { templateRoutes } from "./routes/templates.js";
import { templateImportRoutes } from "./routes/template-import.js";
import { sandboxRoutes } from "./routes/sandboxes.js";
import { snapshotRoutes } from "./routes/snapshots.js";
import { execRoutes } from "./routes/exec.js";
import { fileRoutes } from "./routes/files.js";
import { connectChannel } from "./connect.js";

export const DEFAULT_IMPORT_LIMIT = 8 * 1024 ** 3;

export interface AppOptions {
  readonly sandboxes: Sandboxes;
  readonly logger: Logger;
  /** Largest JSON request body, bytes (file uploads stream and are not limited). */
  readonly bodyLimit?: number;
  /** Time a client has to send its request headers (slowloris), ms. */
  readonly headersTimeoutMs?: number;
  /** Check every response against the OpenAPI spec (tests do). */
  readonly validateResponses?: boolean;
  /** Tenants that may import image archives as templates (none by default). */
  readonly templateImporters?: readonly string[];
  /** Largest image archive upload, bytes (default 8 GiB). */
  readonly importLimit?: number;
}

/** Per-request lines at debug level: a busy daemon's info log says what happened to sandboxes, not every GET. */
class QuietRequests extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ method: request.method, url: request.url }, "request");
  }
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    request.log.debug({ status: reply.statusCode, ms: reply.elapsedTime, ...(error ? { err: error } : {}) }, "response");
  }
}

export function buildApp(o: AppOptions): { app: FastifyInstance; ctx: ServerContext } {
  const headersTimeout = o.headersTimeoutMs ?? 10_000;
  // Typed as a plain FastifyInstance: route modules need not know the logger type.
  const app = Fastify({
    loggerInstance: o.logger,
    bodyLimit: o.bodyLimit ?? 1024 * 1024,
    // A client dribbling its headers is cut off after headersTimeout,
    // checked every second, whatever else the server is doing.
    serverFactory: (handler) =>
      http.createServer({ headersTimeout, requestTimeout: 0, connectionsCheckingInterval: 1000, keepAliveTimeout: 5000 }, handler),
    logController: new QuietRequests(),
  }) as unknown as FastifyInstance;
  const openapi = new OpenApi();
  openapi.precompileRequestBodies();
  const ctx: ServerContext = {
    sandboxes: o.sandboxes,
    activity: new Activity(),
    openapi,
    processes: new Map(),
    templateImporters: new Set(o.templateImporters ?? []),
    importLimit: o.importLimit ?? DEFAULT_IMPORT_LIMIT,
    observe: () => {},
    channels: 0,
  };

  // Uploads and stdin are streamed to the agent as they arrive.
  app.addContentTypeParser("application/octet-stream", (_req, payload, done) => done(null, payload));

  // Hooks with a done callback, not async ones: they run on every request,
  // and fastify then needs no promise per hook.
  app.addHook("onResponse", (_req, _reply, done) => {
    ctx.activity.touch();
    done();
  });
  app.addHook("onRequest", (req, _reply, done) => {
    ctx.activity.touch();
    if (!req.url.startsWith("/v1/")) return done();
    try {
      req.tenant = o.sandboxes.tenants.authenticate(apiKeyOf(req.headers));
    } catch (e) {
      return done(e as Error);
    }
    done();
  });

  app.addHook("preValidation", (req, _reply, done) => {
    const op = req.routeOptions.config.operationId;
    if (!op || !req.headers["content-type"]?.startsWith("application/json")) return done();
    const e = openapi.requestBodyError(op, req.body);
    if (e) return done(e);
    done();
  });

  if (o.validateResponses) {
    app.addHook("onSend", async (req, reply, payload) => {
      const op = req.routeOptions.config.operationId;
      if (!op) return payload;
      const type = String(reply.getHeader("content-type") ?? "");
      if (typeof payload !== "string" && payload !== null && payload !== undefined) return payload; // streams check themselves
      const body = typeof payload === "string" && type.startsWith("application/json") ? (JSON.parse(payload) as unknown) : payload ?? undefined;
      const problems = openapi.checkResponse(op, reply.statusCode, type || "application/json", body);
      if (problems.length) {
        req.log.error({ op, status: reply.statusCode, problems }, "response does not match the OpenAPI spec");
        throw new Error(`response of ${op} (${reply.statusCode}) does not match the spec: ${problems.join("; ")}`);
      }
      return payload;
    });
  }

  app.setErrorHandler(async (e, req, reply) => {
    const { status, body } = toHttpError(e);
    if (status >= 500) req.log.error({ err: e }, "request failed");
    else if (!(e instanceof AuthError)) req.log.debug({ code: body.error.code }, body.error.message);
    return reply.code(status).type("application/json").send(body);
  });
  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send({ error: { code: "route_not_found", message: `no route ${req.method} ${req.url.split("?")[0]}` } }),
  );

  metricsRoutes(app, ctx);
  healthRoutes(app, ctx);
  templateRoutes(app, ctx);
  templateImportRoutes(app, ctx);
  sandboxRoutes(app, ctx);
  snapshotRoutes(app, ctx);
  const checkedEvent = (op: string, event: unknown) => openapi.checkedEvent(op, event, o.validateResponses === true);
  execRoutes(app, ctx, checkedEvent);
  connectChannel(app, ctx, { maxPayload: o.bodyLimit ?? 1024 * 1024, validateResponses: o.validateResponses === true, checkedEvent });
  fileRoutes(app, ctx);
  return { app, ctx };
}
