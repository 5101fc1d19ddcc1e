import { CreateLimiter, type CreateRate } from "./rate-limit.js";
import http from "node:http";
import Fastify, { LogController, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Sandboxes } from "../runtime/sandboxes.js";
import { AuthError } from "../core/errors.js";
import { toHttpError } from "./http-errors.js";
import { OpenApi } from "./openapi.js";
import { ParamChecker } from "./openapi-params.js";
import { Activity } from "./activity.js";
import { apiKeyOf, type ServerContext } from "./context.js";
import { setUpMetrics } from "./metrics.js";
import { connectChannel } from "./connect.js";
import { logRequest } from "./dispatch.js";
import { registerHttpRoutes } from "./http-routes.js";
import { PortProxy } from "./port-proxy.js";
import type { Duplex } from "node:stream";
import { checkedOperationTable } from "./operations/index.js";
import type { Operations } from "./operations/types.js";

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
  /** Tenants whose keys may change what every tenant shares: templates, pools, the store, tenants and keys. */
  readonly adminTenants?: readonly string[];
  /** Tenants that may import image archives as templates, besides the admins (none by default). */
  readonly templateImporters?: readonly string[];
  /** Largest image archive upload, bytes (default 8 GiB). */
  readonly importLimit?: number;
  /** Serve GET /metrics without a key (it names every tenant): the operator's opt-out. */
  readonly publicMetrics?: boolean;
  /** Sandbox starts each tenant may make (rate-limit.ts); undefined: no limit. */
  readonly createRate?: CreateRate;
  /** The domain of port URLs (`http://PORT-ID.DOMAIN:DAEMONPORT/`; default localhost). */
  readonly portDomain?: string;
  /** The network of a sandbox whose spec names none (default "none"). */
  readonly defaultNetwork?: "none" | "nat";
  /** Another OpenAPI document and other handlers (tests of the table's checks). */
  readonly openapiFile?: string;
  readonly operations?: readonly Operations[];
}

/**
 * The daemon's API: the operation table checked against api/openapi.yaml
 * (a mismatch throws, so the daemon does not start), its HTTP routes, and
 * /v1/connect. Each request is logged once at info level when its answer
 * is complete, on both transports.
 */
export function buildApp(o: AppOptions): { app: FastifyInstance; ctx: ServerContext } {
  const headersTimeout = o.headersTimeoutMs ?? 10_000;
  const openapi = new OpenApi(o.openapiFile);
  const table = checkedOperationTable(openapi, o.operations);
  openapi.precompileRequestBodies();
  const params = new ParamChecker(openapi);
  const portProxy = new PortProxy(o.sandboxes, o.portDomain);
  // Typed as a plain FastifyInstance: route modules need not know the logger type.
  const app = Fastify({
    loggerInstance: o.logger,
    bodyLimit: o.bodyLimit ?? 1024 * 1024,
    // Above the longest name (a template's, 128: core/names.ts), so an
    // over-long one gets the name check's 400 with its code, not the
    // router's bare 414; longer still, the 414 goes through the error handler.
    routerOptions: { maxParamLength: 1024 },
    // The router's own refusals (a bad URL, an over-long parameter) in the API's error shape, with a code.
    frameworkErrors: (e, _req, reply) => {
      const status = (e as { statusCode?: number }).statusCode ?? 400;
      const code = status === 414 ? "uri_too_long" : "bad_request";
      const r = reply as unknown as { code(n: number): { type(t: string): { send(b: unknown): unknown } } };
      void r.code(status).type("application/json").send({ error: { code, message: e.message } });
    },
    // A client dribbling its headers is cut off after headersTimeout,
    // checked every second, whatever else the server is doing.
    // A request for a sandbox's port (by its Host header) goes to the port proxy, never to the API.
    serverFactory: (handler) =>
      http.createServer({ headersTimeout, requestTimeout: 0, connectionsCheckingInterval: 1000, keepAliveTimeout: 5000 }, (req, res) => {
        if (portProxy.claims(req)) void portProxy.handle(req, res);
        else handler(req, res);
      }),
    // One line per request, written below once its answer is complete (fastify's own two are off).
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  const ctx: ServerContext = {
    sandboxes: o.sandboxes,
    activity: new Activity(),
    openapi,
    processes: new Map(),
    admins: new Set(o.adminTenants ?? []),
    templateImporters: new Set(o.templateImporters ?? []),
    importLimit: o.importLimit ?? DEFAULT_IMPORT_LIMIT,
    publicMetrics: o.publicMetrics === true,
    creates: new CreateLimiter(o.createRate),
    observe: () => {},
    metrics: async () => ({ type: "text/plain", text: "" }),
    channels: 0,
    portProxy,
    ...(o.defaultNetwork ? { defaultNetwork: o.defaultNetwork } : {}),
  };
  setUpMetrics(ctx);

  // Hooks with a done callback, not async ones: they run on every request,
  // and fastify then needs no promise per hook.
  app.addHook("onRequest", (req, _reply, done) => {
    ctx.activity.touch();
    const op = req.routeOptions.config.operationId;
    if (op ? openapi.operation(op).public || (op === "metrics" && o.publicMetrics === true) : !req.url.startsWith("/v1/")) return done();
    try {
      const key = apiKeyOf(req.headers);
      req.tenant = o.sandboxes.tenants.authenticate(key);
      req.operator = o.sandboxes.tenants.isOperator(key);
    } catch (e) {
      return done(e as Error);
    }
    done();
  });
  app.addHook("onResponse", (req, reply, done) => {
    ctx.activity.touch();
    const operation = req.routeOptions.config.operationId ?? "none";
    ctx.observe(operation, reply.statusCode, reply.elapsedTime / 1000);
    logRequest(req.log, { transport: "http", method: req.method, operation, status: reply.statusCode, ms: reply.elapsedTime, tenant: req.tenant, sandbox: req.sandbox });
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

  const checkedEvent = (op: string, event: unknown) => openapi.checkedEvent(op, event, o.validateResponses === true);
  registerHttpRoutes(app, ctx, params, table, checkedEvent);
  app.server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (portProxy.claims(req)) void portProxy.upgrade(req, socket, head);
  });
  connectChannel(app, ctx, { params, table, maxPayload: o.bodyLimit ?? 1024 * 1024, validateResponses: o.validateResponses === true, checkedEvent });
  return { app, ctx };
}
