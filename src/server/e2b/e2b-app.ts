import http from "node:http";
import Fastify, { LogController, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { Code, ConnectError } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import { AuthError } from "../../core/errors.js";
import type { Sandboxes } from "../../runtime/sandboxes.js";
import { AccessTokens } from "./access-token.js";
import type { PortHosts } from "./sandbox-json.js";
import { AccountCache } from "./accounts.js";
import { registerSandboxRoutes } from "./control-sandboxes.js";
import { registerSnapshotRoutes } from "./control-snapshots.js";
import { registerEnvdRoutes } from "./envd-routes.js";
import { toE2bHttpError } from "./errors.js";
import { filesystemService } from "./filesystem-service.js";
import { PolledWatchers } from "./filesystem-watchers.js";
import { processService } from "./process-service.js";
import { ProcessTable } from "./processes.js";
import { Filesystem } from "./gen/filesystem/filesystem_pb.js";
import { Process } from "./gen/process/process_pb.js";

/** Largest Connect request message, bytes: stdin the SDK sends is one message per call. */
export const RPC_MESSAGE_LIMIT = 16 * 1024 * 1024;

export interface E2bOptions {
  readonly sandboxes: Sandboxes;
  readonly logger: Logger;
  /** The backend E2B sandboxes get (default container). */
  readonly backend?: "container" | "vm" | "gvisor";
  /** The network of a sandbox whose create says nothing of internet access (the daemon's --default-network; default none). */
  readonly defaultNetwork?: "none" | "nat";
  /** Largest JSON body of the sandbox API, bytes (file uploads stream and are not limited). */
  readonly bodyLimit?: number;
  /** Time a client has to send its request headers (slowloris), ms. */
  readonly headersTimeoutMs?: number;
  /** corrald's port URLs (its PortProxy): E2B's domain for getHost, and trafficAccessToken. */
  readonly ports?: PortHosts;
  /** How long a polled watcher may go unpolled (default WATCHER_IDLE_MS). */
  readonly watcherIdleMs?: number;
}

export interface E2bApp {
  readonly app: FastifyInstance;
  readonly processes: ProcessTable;
  /** Stops serving: streams that follow commands end (unavailable), the commands run on. */
  close(): Promise<void>;
}

/**
 * corrald's E2B compatibility listener: E2B's sandbox API (E2B_API_URL)
 * and its in-sandbox daemon's API (E2B_SANDBOX_URL: /health, /files and
 * the Connect RPCs of process.Process and filesystem.Filesystem, JSON or
 * binary) on one port, so both variables name the same URL. Errors are
 * E2B's `{ code, message }` (toE2bHttpError) or Connect errors.
 */
export function buildE2bApp(o: E2bOptions): E2bApp {
  const headersTimeout = o.headersTimeoutMs ?? 10_000;
  const app = Fastify({
    loggerInstance: o.logger,
    bodyLimit: o.bodyLimit ?? 1024 * 1024,
    serverFactory: (handler) =>
      http.createServer({ headersTimeout, requestTimeout: 0, connectionsCheckingInterval: 1000, keepAliveTimeout: 5000 }, handler),
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  const tokens = AccessTokens.forStateDir(o.sandboxes.stateDir);
  const env = { sandboxes: o.sandboxes, tokens, accounts: new AccountCache(), backend: o.backend ?? "container", defaultNetwork: o.defaultNetwork ?? "none", ...(o.ports ? { ports: o.ports } : {}) } as const;
  const processes = new ProcessTable();
  const watchers = new PolledWatchers(env, o.watcherIdleMs);

  app.addHook("onResponse", (req, reply, done) => {
    req.log.info({ transport: "e2b", method: req.method, url: req.url.split("?")[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 }, "request");
    done();
  });
  app.setErrorHandler(async (e, req, reply) => {
    const { status, body } = toE2bHttpError(e);
    if (status >= 500 && status !== 501 && status !== 502) req.log.error({ err: e }, "e2b request failed");
    else if (!(e instanceof AuthError)) req.log.debug({ status }, body.message);
    return reply.code(status).type("application/json").send(body);
  });
  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send({ code: 404, message: `corrald's E2B API has no ${req.method} ${req.url.split("?")[0]} (docs/e2b.md lists what it serves)` }),
  );

  void app.register(async (scope) => registerSandboxRoutes(scope, env));
  void app.register(async (scope) => registerSnapshotRoutes(scope, env));
  void app.register(async (scope) => registerEnvdRoutes(scope, env));
  void app.register(fastifyConnectPlugin, {
    // One RPC message (stdin, a path) at most; Connect's own default is 4 GiB.
    readMaxBytes: RPC_MESSAGE_LIMIT,
    routes: (router) => {
      router.service(Process, processService({ ...env, processes }));
      router.service(Filesystem, filesystemService(env, watchers));
    },
  });
  return {
    app,
    processes,
    async close() {
      processes.shutdown(new ConnectError("corrald is stopping; the command runs on (connect to it again)", Code.Unavailable));
      watchers.close();
      await app.close();
    },
  };
}
