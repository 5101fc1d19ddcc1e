import type { components } from "./api-types.js";

/** The `error` object of an API error body: `{"error": {...}}`. */
export type ApiErrorBody = components["schemas"]["Error"]["error"];
export type SpecIssue = NonNullable<ApiErrorBody["issues"]>[number];
export type QuotaOver = NonNullable<ApiErrorBody["over"]>;

/**
 * Every error the SDK throws. `code` is the server's stable code
 * (`sandbox_not_found`, `invalid_spec`, `unauthorized`, `quota_exceeded` ...)
 * or, for errors raised before any response, one of the SDK's own
 * (`missing_api_key`, `request_timeout`, `connection_failed`,
 * `bad_response`). `status` is the HTTP status, 0 when there was none.
 */
export class CorralSdkError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status = 0, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** 404: no such sandbox (for this tenant), file or process. */
export class NotFoundError extends CorralSdkError {}

/** 401 (or no API key configured): the key is missing, malformed, unknown or revoked. */
export class AuthError extends CorralSdkError {}

/** 429: a tenant quota would be exceeded; `over` says which. */
export class QuotaError extends CorralSdkError {
  readonly over: QuotaOver | undefined;
  constructor(code: string, message: string, status: number, over: QuotaOver | undefined) {
    super(code, message, status);
    this.over = over;
  }
}

/** 400/413/415/422: the request was refused; `issues` names each bad field of a spec. */
export class InvalidArgumentError extends CorralSdkError {
  readonly issues: readonly SpecIssue[];
  constructor(code: string, message: string, status: number, issues: readonly SpecIssue[] = []) {
    super(code, message, status);
    this.issues = issues;
  }
}

/** 403: the key is valid but may not do this (change templates, pools, tenants ... without being an admin tenant's). */
export class ForbiddenError extends CorralSdkError {}

/** 408/504, or the SDK's own request timeout (`requestTimeoutMs`) passed. */
export class TimeoutError extends CorralSdkError {}

/** 409: the name is taken, the directory is not empty ... */
export class ConflictError extends CorralSdkError {}

/** Anything else: the sandbox or the server failed, or could not be reached. */
export class SandboxError extends CorralSdkError {}

export interface ErrorInput {
  /** HTTP status; 0 when there is none (an `error` event inside a stream). */
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly issues?: readonly SpecIssue[] | undefined;
  readonly over?: QuotaOver | undefined;
}

/**
 * The one place that turns an API error into an SDK error class: by HTTP
 * status, or by code when there is no status (errors inside a stream).
 */
export function errorFor(e: ErrorInput): CorralSdkError {
  const { status, code } = e;
  let message = e.message;
  const issues = e.issues ?? [];
  const unnamed = issues.filter((i) => !message.includes(i.path));
  if (unnamed.length) message += ` (${unnamed.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")})`;
  const kind = status ? byStatus(status) : byCode(code);
  switch (kind) {
    case "not_found":
      return new NotFoundError(code, message, status);
    case "auth":
      return new AuthError(code, message, status);
    case "forbidden":
      return new ForbiddenError(code, message, status);
    case "quota":
      return new QuotaError(code, message, status, e.over);
    case "invalid":
      return new InvalidArgumentError(code, message, status, issues);
    case "timeout":
      return new TimeoutError(code, message, status);
    case "conflict":
      return new ConflictError(code, message, status);
    default:
      return new SandboxError(code, message, status);
  }
}

type Kind = "not_found" | "auth" | "forbidden" | "quota" | "invalid" | "timeout" | "conflict" | "other";

function byStatus(status: number): Kind {
  switch (status) {
    case 404:
      return "not_found";
    case 401:
      return "auth";
    case 403:
      return "forbidden";
    case 429:
      return "quota";
    case 400:
    case 413:
    case 415:
    case 422:
      return "invalid";
    case 408:
    case 504:
      return "timeout";
    case 409:
      return "conflict";
    default:
      return "other";
  }
}

function byCode(code: string): Kind {
  if (code === "unauthorized") return "auth";
  if (code === "forbidden") return "forbidden";
  if (code === "quota_exceeded") return "quota";
  if (code === "timeout") return "timeout";
  if (code === "conflict") return "conflict";
  if (code.endsWith("_not_found") || code === "sandbox_enoent" || code === "sandbox_esrch") return "not_found";
  if (code.startsWith("invalid_")) return "invalid";
  return "other";
}

/**
 * The error for a non-2xx response body (already read as text). A body
 * that is not corral's error shape (a proxy's HTML page) still gives an
 * error of the status's class, with the start of the body in the message.
 */
export function errorFromResponse(status: number, statusText: string, text: string): CorralSdkError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const err = apiErrorOf(body);
  if (err) return errorFor({ status, code: err.code, message: err.message, issues: err.issues, over: err.over });
  const snippet = text.trim().slice(0, 200);
  return errorFor({ status, code: `http_${status}`, message: `HTTP ${status} ${statusText}${snippet ? `: ${snippet}` : ""}` });
}

/** The same for an answer whose body is already parsed (a /v1/connect reply). */
export function errorFromBody(status: number, body: unknown): CorralSdkError {
  const err = apiErrorOf(body);
  if (err) return errorFor({ status, code: err.code, message: err.message, issues: err.issues, over: err.over });
  return errorFor({ status, code: `http_${status}`, message: `status ${status}: ${JSON.stringify(body ?? null).slice(0, 200)}` });
}

/** The `error` object of a body, if it has corral's error shape. */
export function apiErrorOf(body: unknown): ApiErrorBody | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const e = (body as { error?: unknown }).error;
  if (typeof e !== "object" || e === null) return undefined;
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code !== "string" || typeof message !== "string") return undefined;
  return e as ApiErrorBody;
}
