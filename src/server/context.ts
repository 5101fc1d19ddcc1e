import type { CreateLimiter } from "./rate-limit.js";
import type { IncomingHttpHeaders } from "node:http";
import type { Sandboxes, SandboxInfo, SandboxRecord } from "../runtime/sandboxes.js";
import type { ExecHandle } from "../agent/client.js";
import type { OpenApi } from "./openapi.js";
import type { Activity } from "./activity.js";
import type { PortProxy } from "./port-proxy.js";

export interface ProcessEntry {
  readonly handle: ExecHandle;
  /** Done with the command: kills it if it still runs and is not keepAlive. */
  readonly end: () => void;
  /** The exit (or error) event, once the command has ended. */
  readonly finished: Promise<Record<string, unknown>>;
  ended: boolean;
}

/** How many ended background commands are remembered for wait. */
export const ENDED_PROCESSES_KEPT = 10_000;

/** What every operation gets: the runtime and what the daemon keeps besides it. */
export interface ServerContext {
  readonly sandboxes: Sandboxes;
  /** When requests last came and went (pool refills wait for a lull). */
  readonly activity: Activity;
  readonly openapi: OpenApi;
  /**
   * Execs by sandbox id and pid: running ones (stdin, signals), and
   * background ones that ended, kept for wait (a bounded number).
   */
  readonly processes: Map<string, ProcessEntry>;
  /** Tenants whose keys may change what every tenant shares (templates, pools, the store, tenants, keys). */
  readonly admins: ReadonlySet<string>;
  /** Tenants whose keys may import image archives as (shared) templates, besides the admins. */
  readonly templateImporters: ReadonlySet<string>;
  /** Largest image archive accepted by PUT /v1/templates/{name}/oci, bytes. */
  readonly importLimit: number;
  /** GET /metrics without a key (corral daemon --public-metrics); otherwise an admin tenant's key. */
  readonly publicMetrics: boolean;
  /** Sandbox starts per tenant (rate-limit.ts). */
  readonly creates: CreateLimiter;
  /** Counts an answered operation in the metrics (set by metrics.ts). */
  observe: (operation: string, status: number, seconds: number) => void;
  /** The Prometheus exposition (set by metrics.ts). */
  metrics: () => Promise<{ type: string; text: string }>;
  /** /v1/connect WebSockets open now. */
  channels: number;
  /** Sandboxes' ports on the daemon's listener (port-proxy.ts). */
  readonly portProxy?: PortProxy;
  /** The network of a sandbox whose spec names none (corrald --default-network). */
  readonly defaultNetwork?: "none" | "nat";
}

declare module "fastify" {
  interface FastifyRequest {
    tenant: string;
    /** Authenticated with the operator credential of a served state dir (Tenants.newOperatorKey): an admin. */
    operator: boolean;
    /** The sandbox the request was about, for its log line. */
    sandbox: string | undefined;
  }
  interface FastifyContextConfig {
    operationId?: string;
  }
}

/** The API key a request carries: `Authorization: Bearer crl_...` or `X-API-Key: crl_...`. */
export function apiKeyOf(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers["authorization"];
  if (typeof auth === "string" && auth.startsWith("Bearer ")) return auth.slice(7).trim();
  const k = headers["x-api-key"];
  return typeof k === "string" ? k : undefined;
}

export const processKey = (sandboxId: string, pid: number) => `${sandboxId}:${pid}`;

/** The API's view of a sandbox. */
export function sandboxJson(s: SandboxInfo | (SandboxRecord & { status?: SandboxInfo["status"] })) {
  return {
    id: s.id,
    name: s.name,
    template: s.spec.template,
    backend: s.spec.backend,
    status: s.status ?? "running",
    createdAt: s.createdAt,
    expiresAt: s.expiresAt,
    spec: s.spec,
    ...("identity" in s && s.identity ? { identity: s.identity } : {}),
    ...("declared" in s && s.declared ? { declared: true } : {}),
  };
}
