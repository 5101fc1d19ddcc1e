import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchEvent } from "../../agent/client.js";
import { resolvePath } from "./accounts.js";
import { basicAuthUser, envdTarget, requestUser, type AgentLease, type EnvdEnv } from "./envd-target.js";
import { toConnectError } from "./errors.js";
import { StreamQueue } from "./stream-queue.js";
import { EventType, type WatchDirRequest, type WatchDirResponseSchema } from "./gen/filesystem/filesystem_pb.js";

type WatchResponse = MessageInitShape<typeof WatchDirResponseSchema>;

/**
 * Events one WatchDir stream may have waiting for its client. Past it the
 * stream holds its agent connection: the agent stops reading inotify, and
 * the kernel's queue (fs.inotify.max_queued_events, 16384 by default) is
 * the bound from there; what it drops ends the stream (below).
 */
export const WATCH_QUEUE_EVENTS = 4096;
/** Seconds between keepalive events on a quiet watch, unless the client asks (`Keepalive-Ping-Interval`). */
const DEFAULT_KEEPALIVE_S = 50;

const TYPES: Readonly<Record<Exclude<WatchEvent["type"], "overflow">, EventType>> = {
  create: EventType.CREATE,
  write: EventType.WRITE,
  remove: EventType.REMOVE,
  rename: EventType.RENAME,
  chmod: EventType.CHMOD,
};

export type WatchItem = { kind: "event"; e: WatchEvent } | { kind: "end" } | { kind: "failed"; error: unknown };

/** What a watch's client is told when the sandbox's inotify queue overflowed: events were lost. */
export function lostEvents(): ConnectError {
  return new ConnectError("events were lost while this watch's client was behind (the sandbox's inotify queue overflowed); watch again and re-read the directory", Code.DataLoss);
}

/** One of the agent's events as envd's FilesystemEvent (the caller has checked it is not an overflow: see lostEvents). */
export function filesystemEvent(e: WatchEvent): { name: string; type: EventType } {
  return { name: e.name, type: TYPES[e.type as keyof typeof TYPES] };
}

/**
 * A watch of `dir` (resolved for the request's user) on an agent
 * connection of its own, its events into `q`: the agent is held while
 * `q` is over its bound. Resolves once the agent watches; the lease is
 * the caller's to close (the agent ends the watch with the connection).
 */
export async function openWatch(
  env: EnvdEnv,
  ctx: HandlerContext,
  dir: string,
  recursive: boolean,
  q: StreamQueue<WatchItem>,
): Promise<{ lease: AgentLease; sandbox: string; stop: () => Promise<void> }> {
  const target = envdTarget(env, (h) => ctx.requestHeader.get(h) ?? undefined);
  const lease = target.lease();
  try {
    const user = await requestUser(env, target, lease, basicAuthUser(ctx.requestHeader.get("authorization") ?? undefined));
    const p = resolvePath(dir, user);
    const agent = await lease.get();
    const st = await agent.stat(p).catch(() => undefined);
    if (!st) throw new ConnectError(`path not found: ${p}`, Code.NotFound);
    if (st.type !== "dir") throw new ConnectError(`path ${p} not a directory`, Code.InvalidArgument);
    const handle = agent.watch(p, { recursive }, (e) => {
      q.push({ kind: "event", e });
      return q.full ? q.whenDrained() : undefined;
    });
    handle.done.then(
      () => q.push({ kind: "end" }),
      (error: unknown) => q.push({ kind: "failed", error }),
    );
    await handle.ready;
    return { lease, sandbox: target.record.id, stop: () => handle.stop() };
  } catch (e) {
    lease.close();
    throw e;
  }
}

/**
 * envd's WatchDir over the agent's inotify watch, on an agent connection of
 * the stream's own: start, then one filesystem event per change (its name
 * relative to the watched directory), keepalives while quiet. The agent's
 * overflow (events lost while the client was behind) ends the stream with
 * an error: E2B's events have no way to say "some are missing", and a
 * watcher that silently misses changes is worse than one told to look again.
 */
export async function* watchDir(env: EnvdEnv, req: WatchDirRequest, ctx: HandlerContext): AsyncGenerator<WatchResponse> {
  let lease: AgentLease | undefined;
  const q = new StreamQueue<WatchItem>(WATCH_QUEUE_EVENTS, () => 1);
  try {
    let stop: (() => Promise<void>) | undefined;
    try {
      ({ lease, stop } = await openWatch(env, ctx, req.path, req.recursive, q));
    } catch (e) {
      throw toConnectError(e);
    }
    yield { event: { case: "start", value: {} } };
    const asked = Number(ctx.requestHeader.get("keepalive-ping-interval"));
    const idleMs = (Number.isFinite(asked) && asked >= 1 && asked <= 3600 ? asked : DEFAULT_KEEPALIVE_S) * 1000;
    const gone = () => q.close();
    ctx.signal.addEventListener("abort", gone);
    try {
      for (;;) {
        const item = await q.next(idleMs);
        if (item === undefined || item === "idle") {
          if (item === undefined) break;
          yield { event: { case: "keepalive", value: {} } };
        } else if (item.kind === "end") return;
        else if (item.kind === "failed") throw toConnectError(item.error);
        else if (item.e.type === "overflow") throw lostEvents();
        else yield { event: { case: "filesystem", value: filesystemEvent(item.e) } };
      }
      if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason);
    } finally {
      ctx.signal.removeEventListener("abort", gone);
      void stop?.().catch(() => {});
    }
  } finally {
    q.close();
    lease?.close(); // the agent ends a watch with its connection
  }
}
