import type { FastifyReply, FastifyRequest } from "fastify";
import type { Sandboxes, SandboxInfo, SandboxRecord } from "../runtime/sandboxes.js";
import type { ExecHandle, AgentClient } from "../agent/client.js";
import { InvalidArgumentError } from "../spec/errors.js";
import type { OpenApi } from "./openapi.js";

/** What every route module gets. */
export interface ServerContext {
  readonly sandboxes: Sandboxes;
  readonly openapi: OpenApi;
  /** Running execs that take stdin or signals, by sandbox id and pid. */
  readonly processes: Map<string, { handle: ExecHandle; client: AgentClient }>;
}

declare module "fastify" {
  interface FastifyRequest {
    tenant: string;
  }
  interface FastifyContextConfig {
    operationId?: string;
  }
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
