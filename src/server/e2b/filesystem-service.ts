import path from "node:path";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { AgentClient, FileStat } from "../../agent/client.js";
import { SandboxOperationError } from "../../core/errors.js";
import { resolvePath, type Accounts, type SandboxUser } from "./accounts.js";
import { entryInfo, type EntryInit } from "./entry-info.js";
import { basicAuthUser, envdTarget, requestUser, type AgentLease, type EnvdEnv, type EnvdTarget } from "./envd-target.js";
import { toConnectError } from "./errors.js";
import { giveTo, missingDirs } from "./ownership.js";
import { FileType, Filesystem } from "./gen/filesystem/filesystem_pb.js";
import { watchDir } from "./filesystem-watch.js";
import type { PolledWatchers } from "./filesystem-watchers.js";

/** Entries one ListDir answers at most: the answer is one message, held whole. */
export const MAX_LIST_ENTRIES = 100_000;
/** Stats in flight at once while a listing looks up owners (one agent connection). */
const STAT_CONCURRENCY = 64;

/** What one filesystem RPC works with: its sandbox, its user, one agent connection. */
interface FsCall {
  readonly target: EnvdTarget;
  readonly lease: AgentLease;
  readonly user: SandboxUser;
  readonly accounts: Accounts;
}

/**
 * envd's Filesystem service over corral's agent: every path resolved as
 * envd resolves it for the request's user (relative to the home, "~"),
 * then handed to the agent, which resolves it inside the sandbox's root
 * (openat2 RESOLVE_IN_ROOT). Directories MakeDir creates are given to the
 * user, as envd's are.
 */
export function filesystemService(env: EnvdEnv, watchers: PolledWatchers): ServiceImpl<typeof Filesystem> {
  async function call<T>(ctx: HandlerContext, fn: (c: FsCall, agent: AgentClient) => Promise<T>): Promise<T> {
    let lease: AgentLease | undefined;
    try {
      const target = envdTarget(env, (h) => ctx.requestHeader.get(h) ?? undefined);
      lease = target.lease();
      const user = await requestUser(env, target, lease, basicAuthUser(ctx.requestHeader.get("authorization") ?? undefined));
      const accounts = await env.accounts.accounts(target.record.id, lease.get);
      return await fn({ target, lease, user, accounts }, await lease.get());
    } catch (e) {
      throw toConnectError(e);
    } finally {
      lease?.close();
    }
  }

  return {
    stat: (req, ctx) =>
      call(ctx, async (c, agent) => {
        const p = resolvePath(req.path, c.user);
        return { entry: entryInfo(p, await notFoundAs(agent.stat(p, false), `file not found: ${p}`), c.accounts) };
      }),

    listDir: (req, ctx) =>
      call(ctx, async (c, agent) => {
        const p = resolvePath(req.path, c.user);
        const st = await notFoundAs(agent.stat(p), `directory not found: ${p}`);
        if (st.type !== "dir") throw new ConnectError(`path is not a directory: ${p}`, Code.InvalidArgument);
        return { entries: await walk(agent, p, req.depth === 0 ? 1 : req.depth, c.accounts) };
      }),

    makeDir: (req, ctx) =>
      call(ctx, async (c, agent) => {
        const p = resolvePath(req.path, c.user);
        const st = await agent.stat(p).catch((e: unknown) => {
          if (e instanceof SandboxOperationError && e.errno === "ENOENT") return undefined;
          throw e;
        });
        if (st?.type === "dir") throw new ConnectError(`directory already exists: ${p}`, Code.AlreadyExists);
        if (st) throw new ConnectError(`path already exists but it is not a directory: ${p}`, Code.InvalidArgument);
        const made = await missingDirs(agent, p);
        await agent.mkdir(p, { parents: true });
        await giveTo(env.sandboxes, c.target.record.id, c.target.record.tenant, c.user, made);
        return { entry: { name: path.posix.basename(p), type: FileType.DIRECTORY, path: p } };
      }),

    remove: (req, ctx) =>
      call(ctx, async (c, agent) => {
        const p = resolvePath(req.path, c.user);
        // As envd's os.RemoveAll: what is not there is already removed.
        await agent.remove(p, { recursive: true }).catch((e: unknown) => {
          if (!(e instanceof SandboxOperationError && e.errno === "ENOENT")) throw e;
        });
        return {};
      }),

    // As envd's Move: the destination's missing directories made (and given to the user), then a rename (replacing a file there).
    move: (req, ctx) =>
      call(ctx, async (c, agent) => {
        const from = resolvePath(req.source, c.user);
        const to = resolvePath(req.destination, c.user);
        await notFoundAs(agent.stat(from, false), `source not found: ${from}`);
        const made = await missingDirs(agent, path.posix.dirname(to));
        if (made.length > 0) {
          await agent.mkdir(path.posix.dirname(to), { parents: true });
          await giveTo(env.sandboxes, c.target.record.id, c.target.record.tenant, c.user, made);
        }
        await agent.rename(from, to);
        return { entry: entryInfo(to, await agent.stat(to, false), c.accounts) };
      }),

    watchDir: (req, ctx) => watchDir(env, req, ctx),

    // Polled by id: E2B's Python SDK (files.watch_dir); the JS SDK streams (WatchDir).
    createWatcher: (req, ctx) => watchers.create(req, ctx),
    getWatcherEvents: async (req, ctx) => watchers.events(req.watcherId, ctx),
    removeWatcher: async (req, ctx) => watchers.remove(req.watcherId, ctx),
  };
}

async function notFoundAs<T>(p: Promise<T>, message: string): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof SandboxOperationError && e.errno === "ENOENT") throw new ConnectError(message, Code.NotFound);
    throw e;
  }
}

/**
 * The tree under `dir` to `depth` levels, as envd's walk: breadth first,
 * symlinks not followed, each entry stat'ed (the agent's listing has no
 * owner) a bounded number at a time, at most MAX_LIST_ENTRIES.
 */
async function walk(agent: AgentClient, dir: string, depth: number, accounts: Accounts): Promise<EntryInit[]> {
  const out: EntryInit[] = [];
  let level = [dir];
  for (let d = 1; d <= depth && level.length > 0; d++) {
    const next: string[] = [];
    for (const parent of level) {
      const names = await agent.list(parent).catch((e: unknown) => {
        // A directory removed while we walked: envd's walk fails there too, but one gone is not worth the listing.
        if (e instanceof SandboxOperationError && e.errno === "ENOENT") return [];
        throw e;
      });
      if (out.length + names.length > MAX_LIST_ENTRIES) {
        throw new ConnectError(`more than ${MAX_LIST_ENTRIES} entries under ${dir}: list a smaller depth or a deeper directory`, Code.FailedPrecondition);
      }
      const paths = names.map((n) => path.posix.join(parent, n.name));
      const stats: (FileStat | undefined)[] = new Array(paths.length);
      for (let i = 0; i < paths.length; i += STAT_CONCURRENCY) {
        const batch = paths.slice(i, i + STAT_CONCURRENCY);
        const got = await Promise.all(batch.map((p) => agent.stat(p, false).catch(() => undefined)));
        got.forEach((s, j) => (stats[i + j] = s));
      }
      names.forEach((n, i) => {
        const p = paths[i]!;
        out.push(entryInfo(p, stats[i] ?? n, accounts));
        if (n.type === "dir") next.push(p);
      });
    }
    level = next;
  }
  return out;
}
