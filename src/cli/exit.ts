/**
 * Errors by shape, not class: corral's CorralError and the SDK's
 * CorralSdkError both carry a stable `code` and an HTTP `status` (0 when
 * the SDK raised it before any request). Importing either class here would
 * load the SDK on the state dir's path or the runtime's modules on the
 * daemon's.
 */
interface Coded {
  readonly name: string;
  readonly message: string;
  readonly code: string;
  readonly status: number;
}

function coded(e: unknown): e is Coded {
  return e instanceof Error && typeof (e as Partial<Coded>).code === "string" && typeof (e as Partial<Coded>).status === "number";
}

/** Raised by the SDK before any request (no key, a bad option): the request's fault. */
const CLIENT_SIDE = new Set(["AuthError", "InvalidArgumentError", "NotFoundError"]);

/**
 * The exit code of a failed command: 1 when the request was at fault (bad
 * flags, no such sandbox, a refused key: HTTP 4xx), 125 when corral or the
 * host was (HTTP 5xx, the daemon unreachable, anything unexpected).
 */
export function exitCodeOf(e: unknown): number {
  if (!coded(e)) return 125;
  if (e.status >= 400 && e.status < 500) return 1;
  if (e.status === 0 && CLIENT_SIDE.has(e.name)) return 1;
  return 125;
}

/** The one-line message `corral: ...` prints for an error, with a hint where one helps. */
export function messageOf(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (!coded(e)) return msg;
  if (e.name === "AuthError") return `${msg} (the key comes from --api-key or CORRAL_API_KEY)`;
  // A valid key of a tenant that may not do this: the daemon's message says who may.
  if (e.code === "forbidden") return `forbidden: ${msg}`;
  if (e.code === "template_not_found") return `${msg} (corral template ls lists the templates)`;
  if (e.code === "usage") return `${msg} (see ${(e as Coded & { command?: string }).command ?? "corral"} --help)`;
  return msg;
}
