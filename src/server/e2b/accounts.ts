import path from "node:path";
import type { AgentClient } from "../../agent/client.js";
import { InvalidArgumentError } from "../../core/errors.js";

/** An account of the sandbox, from its /etc/passwd. */
export interface SandboxUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** The sandbox's accounts: users by name, and user and group names by id. */
export interface Accounts {
  readonly users: ReadonlyMap<string, SandboxUser>;
  readonly userNames: ReadonlyMap<number, string>;
  readonly groupNames: ReadonlyMap<number, string>;
}

export const ROOT: SandboxUser = { name: "root", uid: 0, gid: 0, home: "/root" };

/** Largest /etc/passwd or /etc/group read, bytes: a sandbox could make them any size. */
export const MAX_ACCOUNT_FILE = 1024 * 1024;
/** Sandboxes whose accounts are remembered at once (oldest forgotten first). */
const MAX_CACHED = 4096;
/** How long accounts are used as read before the files' size and mtime are checked again, ms. */
const FRESH_MS = 1000;

interface Cached {
  readonly accounts: Accounts;
  readonly stamp: string;
  checkedAt: number;
}

/**
 * Reads a sandbox's accounts through its agent, as envd looks users up in
 * the sandbox: the user a request names (HTTP Basic auth, `username`),
 * whose uid, gid and home a command and new files get. Kept per sandbox,
 * reread when /etc/passwd or /etc/group change (useradd in the sandbox).
 */
export class AccountCache {
  private readonly cache = new Map<string, Cached>();

  /** The sandbox's accounts; `agent` is called only when the files must be looked at. */
  async accounts(sandboxId: string, open: () => Promise<AgentClient>): Promise<Accounts> {
    const hit = this.cache.get(sandboxId);
    if (hit && Date.now() - hit.checkedAt < FRESH_MS) return hit.accounts;
    const agent = await open();
    const stats = await Promise.all(["/etc/passwd", "/etc/group"].map((f) => agent.stat(f).catch(() => undefined)));
    const stamp = stats.map((s) => (s ? `${s.size}:${s.mtimeMs}` : "-")).join(",");
    if (hit && hit.stamp === stamp) {
      hit.checkedAt = Date.now();
      return hit.accounts;
    }
    const [passwd, group] = await Promise.all(
      stats.map((s, i) => (s && s.type === "file" && s.size <= MAX_ACCOUNT_FILE ? agent.readFileBuffer(i === 0 ? "/etc/passwd" : "/etc/group").then(String, () => "") : "")),
    );
    const accounts = parseAccounts(passwd ?? "", group ?? "");
    this.cache.delete(sandboxId);
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(sandboxId, { accounts, stamp, checkedAt: Date.now() });
    return accounts;
  }

  forget(sandboxId: string): void {
    this.cache.delete(sandboxId);
  }
}

export function parseAccounts(passwd: string, group: string): Accounts {
  const users = new Map<string, SandboxUser>();
  const userNames = new Map<number, string>();
  for (const line of passwd.split("\n")) {
    const [name, , uid, gid, , home] = line.split(":");
    if (!name || uid === undefined || gid === undefined || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue;
    const u: SandboxUser = { name, uid: Number(uid), gid: Number(gid), home: home || "/" };
    if (!users.has(name)) users.set(name, u);
    if (!userNames.has(u.uid)) userNames.set(u.uid, name);
  }
  const groupNames = new Map<number, string>();
  for (const line of group.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name && gid !== undefined && /^\d+$/.test(gid) && !groupNames.has(Number(gid))) groupNames.set(Number(gid), name);
  }
  if (!users.has("root")) users.set("root", ROOT);
  return { users, userNames, groupNames };
}

/**
 * A path as envd resolves it for `user`: "~" and "~/x" under the user's
 * home, a relative path (and none at all) under the home too, and "..",
 * "." and repeated slashes resolved. "~other" is refused, as envd does.
 */
export function resolvePath(p: string, user: SandboxUser): string {
  if (p.includes("\0")) throw new InvalidArgumentError("a path must not contain NUL");
  let rel = p;
  if (rel.startsWith("~")) {
    if (rel.length > 1 && rel[1] !== "/") throw new InvalidArgumentError(`cannot expand ${JSON.stringify(p)}: only the user's own home ("~/...") can be named`);
    rel = rel.slice(1).replace(/^\/+/, "");
  }
  return path.posix.resolve(user.home, rel);
}
