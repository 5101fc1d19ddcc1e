import { Code, ConnectError } from "@connectrpc/connect";
import { CorralError, SandboxOperationError } from "../../core/errors.js";
import { toHttpError } from "../http-errors.js";

/**
 * E2B's error body, on both its planes: `{ code, message }` with the HTTP
 * status as `code`. The E2B SDK reads `error.code === 404` to tell a missing
 * sandbox (and maps 401, 429 and 503 to its own classes), so the status
 * and the code must agree.
 */
export interface E2bHttpError {
  readonly status: number;
  readonly body: { readonly code: number; readonly message: string };
}

/** Something corral does not do, said as E2B's API says it (501, never a silent downgrade). */
export class E2bUnsupportedError extends CorralError {
  constructor(message: string) {
    super("e2b_unsupported", message, 501);
  }
}

/**
 * The sandbox an envd request names is gone or not running: E2B's edge
 * answers 502 then, which the SDK reads as "the sandbox is not running"
 * (isRunning() false, a TimeoutError naming the sandbox's timeout).
 */
export class E2bSandboxGoneError extends CorralError {
  constructor(id: string) {
    super("sandbox_not_running", `The sandbox ${id} was not found or is not running`, 502);
  }
}

/** A corral error (or anything else: a 500 whose details stay in the log) in E2B's shape. */
export function toE2bHttpError(e: unknown): E2bHttpError {
  const { status, body } = toHttpError(e);
  return { status, body: { code: status, message: body.error.message } };
}

/**
 * A corral error as a Connect error, for envd's RPCs. The SDK maps the
 * codes to its classes: not_found to FileNotFoundError (filesystem) or
 * false (kill), already_exists to false (makeDir), unavailable to "the
 * sandbox is not running", unimplemented to a SandboxError naming it.
 */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof SandboxOperationError) return new ConnectError(e.message, errnoCode(e.errno));
  if (e instanceof CorralError) return new ConnectError(e.message, statusCode(e.status));
  return new ConnectError("internal error (see the daemon's log)", Code.Internal);
}

function errnoCode(errno: string): Code {
  switch (errno) {
    case "ENOENT":
    case "ESRCH":
      return Code.NotFound;
    case "EEXIST":
      return Code.AlreadyExists;
    case "EACCES":
    case "EPERM":
      return Code.PermissionDenied;
    case "ENOTDIR":
    case "EISDIR":
    case "EINVAL":
    case "ENAMETOOLONG":
    case "ELOOP":
      return Code.InvalidArgument;
    // A terminal size for a command without one, a rename across mounts or onto a full directory.
    case "ENOTTY":
    case "EXDEV":
    case "ENOTEMPTY":
    case "EBUSY":
      return Code.FailedPrecondition;
    default:
      // ENOSPC among them: resource_exhausted would read as a rate limit in the SDK.
      return Code.Internal;
  }
}

function statusCode(status: number): Code {
  switch (status) {
    case 400:
      return Code.InvalidArgument;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.NotFound;
    case 409:
      return Code.FailedPrecondition;
    case 429:
      return Code.ResourceExhausted;
    case 501:
      return Code.Unimplemented;
    case 502:
      return Code.Unavailable;
    case 504:
      return Code.DeadlineExceeded;
    default:
      return Code.Internal;
  }
}
