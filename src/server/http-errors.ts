import { CorralError, InvalidSpecError, QuotaError } from "../core/errors.js";

export interface HttpError {
  readonly status: number;
  readonly body: { error: { code: string; message: string; [k: string]: unknown } };
}

/**
 * The one place an error becomes an HTTP response: CorralError subclasses
 * carry their status and code; fastify's own errors (body too large, bad
 * content type) are mapped by their status; anything else is a 500 whose
 * details go to the log, not the client.
 */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof CorralError) {
    const error: HttpError["body"]["error"] = { code: e.code, message: e.message };
    if (e instanceof InvalidSpecError) error["issues"] = e.issues;
    if (e instanceof QuotaError) error["over"] = e.over;
    return { status: e.status, body: { error } };
  }
  const fe = e as { statusCode?: number; code?: string; message?: string; validation?: unknown };
  // A full state filesystem wherever it was met (SQLite, a mkdir, a write): 507, not 500 (issue 18).
  if (fe.code === "SQLITE_FULL" || fe.code === "ENOSPC" || fe.code === "EDQUOT") {
    return { status: 507, body: { error: { code: "storage_full", message: "the daemon's state filesystem is full" } } };
  }
  if (fe.validation) return { status: 400, body: { error: { code: "invalid_request", message: fe.message ?? "invalid request" } } };
  if (fe.statusCode === 413) return { status: 413, body: { error: { code: "payload_too_large", message: fe.message ?? "request body too large" } } };
  if (fe.statusCode === 415) return { status: 415, body: { error: { code: "unsupported_media_type", message: fe.message ?? "unsupported content type" } } };
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { error: { code: "bad_request", message: fe.message ?? "bad request" } } };
  }
  return { status: 500, body: { error: { code: "internal", message: "internal error (see the daemon's log)" } } };
}
