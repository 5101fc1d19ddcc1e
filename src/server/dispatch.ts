import type { FastifyBaseLogger } from "fastify";
import { CorralError, InvalidArgumentError } from "../core/errors.js";
import type { ServerContext } from "./context.js";
import type { Operation } from "./openapi.js";
import type { ParamChecker } from "./openapi-params.js";
import type { OpRequest, Upload } from "./operations/types.js";

/** What a transport read of a request, before any check. */
export interface Incoming {
  readonly params: Readonly<Record<string, unknown>>;
  readonly query: Readonly<Record<string, unknown>>;
  /** The body's content type; undefined when the request has no body. */
  readonly bodyType: string | undefined;
  /** The parsed body, when it is JSON. */
  readonly body: unknown;
  /** The body's bytes, when it is not JSON. */
  readonly upload: Upload | undefined;
  readonly tenant: string;
  /** The key is a served state dir's operator credential: an admin whatever the tenant. */
  readonly operator?: boolean;
  readonly log: FastifyBaseLogger;
}

export const JSON_TYPE = "application/json";

/**
 * The same checks for both transports, in the same order: parameters
 * (400 naming the parameter), the body's content type (415 for a type the
 * operation does not take), its presence (400 when required), and a JSON
 * body against the spec (400 naming the field; a sandbox spec is left to
 * parseSpec). Returns the request a handler gets.
 */
export function checkedRequest(ctx: ServerContext, params: ParamChecker, op: Operation, inc: Incoming): OpRequest {
  const p = params.check(op.id, inc.params, inc.query);
  const takesJson = op.bodyTypes.includes(JSON_TYPE);
  let body: unknown;
  let upload: Upload | undefined;
  if (op.bodyTypes.length > 0) {
    if (inc.bodyType !== undefined && !op.bodyTypes.includes(inc.bodyType)) throw unsupported(op, inc.bodyType);
    if (inc.bodyType === undefined && op.bodyRequired) {
      throw new InvalidArgumentError(`${op.id} needs a body (content-type: ${op.bodyTypes.join(" or ")})`);
    }
    if (takesJson && inc.bodyType !== undefined) {
      body = inc.body;
      const invalid = ctx.openapi.requestBodyError(op.id, body);
      if (invalid) throw invalid;
    }
    if (!takesJson) upload = inc.upload;
  }
  return { operationId: op.id, params: p.params, query: p.query, body, upload, tenant: inc.tenant, ...(inc.operator ? { operator: true } : {}), log: inc.log, sandbox: undefined };
}

function unsupported(op: Operation, given: string): CorralError {
  const hint =
    given === "application/x-www-form-urlencoded" && op.bodyTypes.includes(JSON_TYPE)
      ? " (curl -d sends a form: add -H 'content-type: application/json')"
      : "";
  return new CorralError("unsupported_media_type", `${op.id} takes ${op.bodyTypes.join(" or ")}, not ${given}${hint}`, 415);
}

/** The one log line of a request, on both transports. */
export function logRequest(
  log: FastifyBaseLogger,
  r: { transport: "http" | "connect"; method: string; operation: string; status: number; ms: number; tenant: string | undefined; sandbox: string | undefined },
): void {
  // Built only when it will be written: a daemon at warn level pays nothing per request.
  if ((log as { isLevelEnabled?: (l: string) => boolean }).isLevelEnabled?.("info") === false) return;
  log.info(
    {
      transport: r.transport,
      method: r.method,
      operation: r.operation,
      status: r.status,
      ms: Math.round(r.ms * 100) / 100,
      ...(r.tenant ? { tenant: r.tenant } : {}),
      ...(r.sandbox ? { sandbox: r.sandbox } : {}),
    },
    "request",
  );
}
