import http from "node:http";
import { BackendError } from "../../core/errors.js";

/** One call to a VMM's REST API; `body` is sent as JSON when present. */
export interface ApiCall {
  readonly method: "GET" | "PUT" | "PATCH";
  readonly path: string;
  readonly body?: unknown;
}

export interface ApiResponse {
  readonly status: number;
  readonly body: string;
}

/**
 * HTTP/1.1 over a unix socket, the transport of both the Cloud Hypervisor
 * (`--api-socket`) and the Firecracker (`--api-sock`) API. Resolves with
 * any status; see `apiCall` for the checked form.
 */
export function apiRequest(socketPath: string, call: ApiCall, timeoutMs = 10_000): Promise<ApiResponse> {
  const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { Accept: "application/json" };
    if (payload) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = payload.length;
    }
    const req = http.request({ socketPath, method: call.method, path: call.path, headers, timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/**
 * `apiRequest` that fails unless the answer is 2xx, with the VMM's own
 * words in the error (Firecracker's `fault_message`, or Cloud Hypervisor's
 * plain-text body).
 */
export async function apiCall(what: string, socketPath: string, call: ApiCall, timeoutMs?: number): Promise<ApiResponse> {
  let res: ApiResponse;
  try {
    res = await apiRequest(socketPath, call, timeoutMs);
  } catch (e) {
    throw new BackendError(`${what}: ${call.method} ${call.path} on ${socketPath} failed: ${(e as Error).message}`, { cause: e });
  }
  if (res.status < 200 || res.status > 299) {
    throw new BackendError(`${what}: ${call.method} ${call.path} answered ${res.status}: ${faultText(res.body)}`);
  }
  return res;
}

function faultText(body: string): string {
  try {
    const j = JSON.parse(body) as unknown;
    if (j && typeof j === "object" && typeof (j as Record<string, unknown>)["fault_message"] === "string") {
      return (j as Record<string, string>)["fault_message"]!;
    }
  } catch {
    // not JSON: Cloud Hypervisor answers errors in plain text
  }
  return body.trim().slice(0, 2000) || "(empty body)";
}
