import type { IncomingHttpHeaders } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Sandboxes, SandboxInfo, SandboxRecord } from "../runtime/sandboxes.js";
import type { ExecHandle } from "../agent/client.js";
import { InvalidArgumentError } from "../core/errors.js";
import type { OpenApi } from "./openapi.js";
import type { Activity } from "./activity.js";

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

/** What every route module gets. */
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
  /** Tenants whose keys may import image archives as (shared) templates. */
  readonly templateImporters: ReadonlySet<string>;
  /** Largest image archive accepted by PUT /v1/templates/{name}/oci, bytes. */
  readonly importLimit: number;
  /** Counts an answered operation in the metrics (set by metricsRoutes; /v1/connect answers without fastify). */
  observe: (operation: string, status: number, seconds: number) => void;
  /** /v1/connect WebSockets open now. */
  channels: number;
}

declare module "fastify" {
  interface FastifyRequest {
    tenant: string;
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
  };
}

/** The required `path` query parameter of the files endpoints. */
export function queryPath(req: FastifyRequest): string {
  const p = (req.query as Record<string, unknown>)["path"];
  if (typeof p !== "string" || !p.startsWith("/") || p.length > 4096) {
    throw new InvalidArgumentError("the query parameter path must be an absolute path inside the sandbox");
  }
  return p;
}

export function param(req: FastifyRequest, name: string): string {
  return String((req.params as Record<string, unknown>)[name]);
}

export type Reply = FastifyReply;
