import type { AgentClient } from "../../agent/client.js";
import { AuthError, CorralError } from "../../core/errors.js";
import type { SandboxRecord, Sandboxes } from "../../runtime/sandboxes.js";
import type { AccessTokens } from "./access-token.js";
import { ROOT, type AccountCache, type SandboxUser } from "./accounts.js";
import { E2bSandboxGoneError } from "./errors.js";

/** How a request to a sandbox's daemon names its sandbox, proves its right, and names its user. */
export const SANDBOX_ID_HEADER = "e2b-sandbox-id";
export const ACCESS_TOKEN_HEADER = "x-access-token";

/** The user when a request names none: E2B's templates run as "user"; one without it (any corral template) as root. */
export const DEFAULT_USER = "user";

export interface EnvdEnv {
  readonly sandboxes: Sandboxes;
  readonly tokens: AccessTokens;
  readonly accounts: AccountCache;
}

/** A checked envd request: its sandbox (running, within its own tenant) and what to reach it with. */
export interface EnvdTarget {
  readonly record: SandboxRecord;
  /** A connection to the sandbox's agent for the length of a request, opened when first needed. */
  lease(): AgentLease;
}

/** One agent connection, opened by the first `get`; `close` closes it if it was. */
export interface AgentLease {
  get(): Promise<AgentClient>;
  close(): void;
}

/**
 * The sandbox an envd request is for: `E2b-Sandbox-Id` names it and
 * `X-Access-Token` must be its token (the request carries no API key: the
 * token is what a tenant got when it created or connected the sandbox).
 * A sandbox that is gone or not running is E2B's 502, whatever the token.
 */
export function envdTarget(env: EnvdEnv, header: (name: string) => string | undefined): EnvdTarget {
  const id = header(SANDBOX_ID_HEADER);
  if (!id) throw new CorralError("invalid_argument", "requests to a sandbox need the E2b-Sandbox-Id header (set by the E2B SDK)", 400);
  let record: SandboxRecord;
  try {
    record = env.sandboxes.running(id);
  } catch (e) {
    // Missing or stopped: the same answer, before the token is looked at.
    if (e instanceof CorralError && (e.status === 404 || e.status === 409)) throw new E2bSandboxGoneError(id);
    throw e;
  }
  // Checked against the record's id (ids only: running() also finds names).
  if (record.id !== id || !env.tokens.valid(record.id, header(ACCESS_TOKEN_HEADER))) {
    throw new AuthError("the sandbox's access token (X-Access-Token) is missing or not this sandbox's");
  }
  return {
    record,
    lease() {
      let opened: Promise<AgentClient> | undefined;
      return {
        get: () => (opened ??= env.sandboxes.agent(record.id, { tenant: record.tenant })),
        close: () => void opened?.then((c) => c.close(), () => {}),
      };
    },
  };
}

/**
 * The user a request names, by HTTP Basic auth ("user:" base64, as the SDK
 * sends it) or a `username` parameter; none: DEFAULT_USER where the sandbox
 * has it, else root. A name the sandbox does not know is a 401, as envd's.
 */
export async function requestUser(env: EnvdEnv, target: EnvdTarget, agent: AgentLease, named: string | undefined): Promise<SandboxUser> {
  const accounts = await env.accounts.accounts(target.record.id, agent.get);
  if (named === undefined || named === "") return accounts.users.get(DEFAULT_USER) ?? accounts.users.get("root") ?? ROOT;
  const u = accounts.users.get(named);
  if (!u) throw new AuthError(`invalid username: '${named}' is not a user of this sandbox`);
  return u;
}

/** The user name of an `Authorization: Basic` header, if it has one. */
export function basicAuthUser(authorization: string | undefined): string | undefined {
  if (!authorization?.startsWith("Basic ")) return undefined;
  const decoded = Buffer.from(authorization.slice(6).trim(), "base64").toString("utf8");
  const i = decoded.indexOf(":");
  return i < 0 ? decoded : decoded.slice(0, i);
}
