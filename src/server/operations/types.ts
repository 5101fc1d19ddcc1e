import type { Readable } from "node:stream";
import type { FastifyBaseLogger } from "fastify";
import { ForbiddenError } from "../../core/errors.js";
import type { ServerContext } from "../context.js";
import type { Scope } from "../../runtime/records.js";

/**
 * What every operation gets, whichever transport brought it (HTTP or
 * /v1/connect): parameters already checked against api/openapi.yaml and
 * converted to their types, the JSON body (checked too, except a sandbox
 * spec: parseSpec checks that) or the request's bytes, and the tenant.
 */
export interface OpRequest {
  readonly operationId: string;
  /** Path parameters (`{id}`, `{pid}` ...), typed as the spec says. */
  readonly params: Readonly<Record<string, unknown>>;
  /** Query parameters, typed as the spec says; absent ones are absent. */
  readonly query: Readonly<Record<string, unknown>>;
  /** The JSON body, or undefined. */
  readonly body: unknown;
  /** The request's bytes, for operations that take a byte body (undefined when none was sent). */
  readonly upload: Upload | undefined;
  /** "" for the operations that need no key (health, metrics). */
  readonly tenant: string;
  /** Authenticated with the operator credential of the state dir the daemon serves (`corral --state-dir`): an admin. */
  readonly operator?: boolean;
  readonly log: FastifyBaseLogger;
  /** The sandbox this request is about, for the request's log line (handlers set it once they know the id). */
  sandbox: string | undefined;
}

export interface Upload {
  readonly stream: Readable;
  /** Bytes announced in advance (HTTP content-length), if any. */
  readonly length: number | undefined;
  /**
   * The handler will not read the rest (it failed): the transport gets rid
   * of it without cutting the caller off before it can read the answer.
   */
  discard(): void;
}

/**
 * A stream of NDJSON events with back-pressure: the transport calls
 * `start` once with its sink, then `pause`/`resume` as its reader keeps up
 * or not, and `cancel` when the caller has gone (a foreground command is
 * then killed). The producer holds nothing itself: while paused it stops
 * its source (the agent connection), so at most what the source had
 * already read (one socket read, ≤ 64 KiB) arrives after a pause.
 */
export interface EventStream {
  start(sink: EventSink): void;
  pause(): void;
  resume(): void;
  cancel(): void;
}

export interface EventSink {
  event(e: Record<string, unknown>): void;
  /** The last event; nothing follows it. */
  end(last: Record<string, unknown>): void;
}

/** What an operation answers, whichever transport carries it. */
export type Answer =
  /** JSON (the default) or text (`type`, e.g. text/plain); no body for 204. */
  | { readonly status: number; readonly body?: unknown; readonly type?: string }
  /** application/x-ndjson. */
  | { readonly status: 200; readonly events: EventStream }
  /** Bytes (application/octet-stream), streamed with the stream's own back-pressure. */
  | { readonly status: 200; readonly bytes: Readable; readonly type: string };

export type Handler = (ctx: ServerContext, req: OpRequest) => Promise<Answer>;

/** The handlers of one resource, by operationId. */
export type Operations = Readonly<Record<string, Handler>>;

export const ok = (body: unknown): Answer => ({ status: 200, body });
export const created = (body: unknown): Answer => ({ status: 201, body });
export const noContent: Answer = { status: 204 };

/** Shared things (templates, pools, the store, tenants, keys) are changed only by admin tenants' keys. */
export function requireAdmin(ctx: ServerContext, req: OpRequest, what: string): void {
  if (!req.operator && !ctx.admins.has(req.tenant)) {
    throw new ForbiddenError(`tenant "${req.tenant}" may not ${what}: it is shared by every tenant (corral daemon --admin-tenant NAME allows it)`);
  }
}

/**
 * Whose sandboxes and snapshots a request may see and act on: its
 * tenant's; with the operator credential (a `corral` command on the state
 * dir the daemon serves), every tenant's, as that command sees them on
 * the state dir itself (what it makes is LOCAL_TENANT's).
 */
export function scopeOf(req: OpRequest): Scope {
  return req.operator ? {} : { tenant: req.tenant };
}

/** A path parameter the spec declares as a string (the dispatcher has checked it). */
export function param(req: OpRequest, name: string): string {
  return String(req.params[name]);
}
