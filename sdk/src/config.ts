import { AuthError, InvalidArgumentError } from "./errors.js";

/** Where the daemon is and how to reach it; every option falls back to the environment. */
export interface ConnectionOpts {
  /** Base URL of the corral daemon. Default: $CORRAL_API_URL, else http://127.0.0.1:7070. */
  apiUrl?: string | undefined;
  /** API key (`crl_...`). Default: $CORRAL_API_KEY. Required. */
  apiKey?: string | undefined;
  /**
   * Longest wait for a response (ms): for JSON calls the whole call, for
   * streamed ones (exec, file read and write) until the response starts.
   * 0 disables it. Default 60 000.
   */
  requestTimeoutMs?: number | undefined;
  /**
   * "auto" (the default): calls with JSON answers and commands go over
   * the daemon's /v1/connect WebSocket, one per process and daemon, when
   * it offers one, and over HTTP otherwise; file transfers and template
   * builds over HTTP.
   * "http": HTTP only. Default: $CORRAL_TRANSPORT, else "auto".
   */
  transport?: "auto" | "http" | undefined;
}

export interface ConnectionConfig {
  readonly apiUrl: string;
  readonly apiKey: string;
  readonly requestTimeoutMs: number;
  readonly transport: "auto" | "http";
}

export const DEFAULT_API_URL = "http://127.0.0.1:7070";
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/**
 * Arguments first, then CORRAL_API_URL / CORRAL_API_KEY. No key is an
 * AuthError here, before any request is made.
 */
export function resolveConfig(opts: ConnectionOpts = {}, env: Readonly<Record<string, string | undefined>> = process.env): ConnectionConfig {
  const apiKey = opts.apiKey ?? env["CORRAL_API_KEY"];
  if (!apiKey) {
    throw new AuthError("missing_api_key", "no API key: pass { apiKey } or set CORRAL_API_KEY");
  }
  const apiUrl = (opts.apiUrl ?? (env["CORRAL_API_URL"] || DEFAULT_API_URL)).replace(/\/+$/, "");
  const requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!Number.isFinite(requestTimeoutMs) || requestTimeoutMs < 0) {
    throw new InvalidArgumentError("invalid_argument", `requestTimeoutMs must be a number >= 0, got ${requestTimeoutMs}`, 0);
  }
  const transport = opts.transport ?? (env["CORRAL_TRANSPORT"] === "http" ? "http" : "auto");
  if (transport !== "auto" && transport !== "http") {
    throw new InvalidArgumentError("invalid_argument", `transport must be "auto" or "http", got ${String(transport)}`, 0);
  }
  return { apiUrl, apiKey, requestTimeoutMs, transport };
}
