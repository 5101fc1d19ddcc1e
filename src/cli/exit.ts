import { CorralError } from "../core/index.js";
import { AuthError, CorralSdkError, InvalidArgumentError, NotFoundError } from "../../sdk/src/index.js";

/**
 * The exit code of a failed command: 1 when the request was at fault (bad
 * flags, no such sandbox, a refused key: HTTP 4xx), 125 when corral or the
 * host was (HTTP 5xx, the daemon unreachable, anything unexpected).
 */
export function exitCodeOf(e: unknown): number {
  if (e instanceof CorralError) return e.status < 500 ? 1 : 125;
  if (e instanceof CorralSdkError) {
    if (e.status >= 400 && e.status < 500) return 1;
    // Raised by the SDK before any request (no key, a bad option).
    if (e.status === 0 && (e instanceof AuthError || e instanceof InvalidArgumentError || e instanceof NotFoundError)) return 1;
  }
  return 125;
}

/** The one-line message `corral: ...` prints for an error. */
export function messageOf(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return e instanceof AuthError ? `${msg} (the key comes from --api-key or CORRAL_API_KEY)` : msg;
}
