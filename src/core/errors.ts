/**
 * The one error base of corral. Every error a user can meet is a subclass
 * with a stable `code` (for programs), an HTTP status (used where it crosses
 * the API, mapped in one place) and a message that says what to do.
 */
export class CorralError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

export interface SpecIssue {
  /** Dotted path of the offending field, e.g. `resources.memory`. */
  readonly path: string;
  readonly message: string;
}

export class InvalidSpecError extends CorralError {
  readonly issues: readonly SpecIssue[];
  constructor(issues: readonly SpecIssue[]) {
    super(
      "invalid_spec",
      `invalid sandbox spec: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`,
      400,
    );
    this.issues = issues;
  }
}

export class InvalidArgumentError extends CorralError {
  constructor(message: string) {
    super("invalid_argument", message, 400);
  }
}

export class NotFoundError extends CorralError {
  constructor(what: string, name: string) {
    // A sandbox is looked up by id or name: one given its 16-hex-digit id is not told "no sandbox named".
    const by = what === "sandbox" && /^[0-9a-f]{16}$/.test(name) ? "with id" : "named";
    super(`${what}_not_found`, `no ${what} ${by} "${name}"`, 404);
  }
}

export class ConflictError extends CorralError {
  constructor(message: string, code = "conflict") {
    super(code, message, 409);
  }
}

/**
 * The sandbox is not running: stopped, or found dead (its init, shim or
 * hypervisor gone) before the daemon's watch recorded it.
 */
export class SandboxNotRunningError extends ConflictError {
  constructor(name: string, state: "stopped" | "dead") {
    super(
      state === "stopped" ? `sandbox "${name}" is stopped; start it first` : `sandbox "${name}" is not running (its processes have ended)`,
      "sandbox_not_running",
    );
  }
}

export class TimeoutError extends CorralError {
  constructor(message: string) {
    super("timeout", message, 504);
  }
}

/** The host lacks something corral needs (a binary, a kernel feature). */
export class HostError extends CorralError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("host_unsupported", message, 503, options);
  }
}

/**
 * A spec asks for a microVM hypervisor (`vmm`) this host cannot run: its
 * binary is not installed, or it needs KVM and /dev/kvm is not usable.
 * The spec is valid; this host cannot serve it (422).
 */
export class VmmUnavailableError extends CorralError {
  readonly vmm: string;
  readonly binary: string;
  constructor(vmm: string, binary: string, reason: string) {
    super("vmm_unavailable", `vmm "${vmm}" cannot run on this host: ${reason}`, 422);
    this.vmm = vmm;
    this.binary = binary;
  }
}

/** A backend (crun, QEMU) or a template build failed. */
export class BackendError extends CorralError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("backend_failed", message, 500, options);
  }
}

/**
 * An operation inside the sandbox failed; `errno` is the agent's errno name
 * (ENOENT, EACCES, ENOSPC ...).
 */
export class SandboxOperationError extends CorralError {
  readonly errno: string;
  constructor(errno: string, message: string) {
    super(`sandbox_${errno.toLowerCase()}`, message, errnoStatus(errno));
    this.errno = errno;
  }
}

function errnoStatus(errno: string): number {
  switch (errno) {
    case "ENOENT":
    case "ESRCH":
      return 404;
    case "EEXIST":
    case "ENOTEMPTY":
    case "EBUSY":
      return 409;
    case "ENOSPC":
    case "EDQUOT":
      return 507;
    case "EACCES":
    case "EPERM":
      return 403;
    default:
      return 400;
  }
}

/** Missing, malformed, unknown or revoked API key. */
export class AuthError extends CorralError {
  constructor(message = "a valid API key is required (Authorization: Bearer <key>)") {
    super("unauthorized", message, 401);
  }
}

/** The API key is valid but may not do this. */
export class ForbiddenError extends CorralError {
  constructor(message: string) {
    super("forbidden", message, 403);
  }
}

/** A tenant quota would be exceeded; `over` names which. */
export class QuotaError extends CorralError {
  readonly over: { readonly quota: string; readonly limit: number; readonly requested: number };
  constructor(quota: string, limit: number, requested: number) {
    super("quota_exceeded", `tenant quota exceeded: ${quota} would be ${requested}, the limit is ${limit}`, 429);
    this.over = { quota, limit, requested };
  }
}

/** A filesystem corral writes to (the state dir's, a sandbox's disk) is full: nothing was half done. */
export class StorageFullError extends CorralError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("storage_full", message, 507, options);
  }
}

/**
 * tar inside a sandbox (the archive operations, `corral cp -r`) could not
 * do its part: `invalid_archive` (400) an archive it cannot read,
 * `tar_missing` (422) a template without a `tar`, `archive_failed` (400)
 * anything else it said (its last line is the message: a read-only
 * directory, a name too long ...).
 */
export class ArchiveError extends CorralError {
  constructor(code: "invalid_archive" | "tar_missing" | "archive_failed", message: string) {
    super(code, message, code === "tar_missing" ? 422 : 400);
  }
}
