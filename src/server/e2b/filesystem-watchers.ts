import { randomUUID } from "node:crypto";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { AgentLease, EnvdEnv } from "./envd-target.js";
import { envdTarget } from "./envd-target.js";
import { toConnectError } from "./errors.js";
import { filesystemEvent, lostEvents, openWatch, WATCH_QUEUE_EVENTS, type WatchItem } from "./filesystem-watch.js";
import { StreamQueue } from "./stream-queue.js";
import type { CreateWatcherRequest, EventType } from "./gen/filesystem/filesystem_pb.js";

/** Polled watchers one sandbox may have at once (each holds an agent connection and an inotify instance). */
export const MAX_WATCHERS_PER_SANDBOX = 64;
/** A watcher nobody asked for events for this long is removed: its client left without RemoveWatcher. */
export const WATCHER_IDLE_MS = 10 * 60_000;

interface Watcher {
  readonly sandbox: string;
  readonly q: StreamQueue<WatchItem>;
  readonly lease: AgentLease;
  readonly stop: () => Promise<void>;
  polledAt: number;
}

/**
 * envd's polled watchers (CreateWatcher, GetWatcherEvents, RemoveWatcher:
 * what E2B's Python SDK's `files.watch_dir` uses): the same agent watch as
 * WatchDir, its events kept here until the client asks for them. Each is
 * its sandbox's only (its id alone, asked through another sandbox, is not
 * found). Bounded: WATCH_QUEUE_EVENTS waiting per watcher, past which the
 * agent holds its inotify reading until the next poll (the kernel's queue
 * from there; an overflow fails the next poll with data_loss and removes
 * the watcher), MAX_WATCHERS_PER_SANDBOX per sandbox, and WATCHER_IDLE_MS
 * without a poll.
 */
export class PolledWatchers {
  private readonly all = new Map<string, Watcher>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly env: EnvdEnv,
    private readonly idleMs = WATCHER_IDLE_MS,
  ) {
    this.sweep = setInterval(() => this.expire(), Math.min(60_000, idleMs));
    this.sweep.unref();
  }

  async create(req: CreateWatcherRequest, ctx: HandlerContext): Promise<{ watcherId: string }> {
    const q = new StreamQueue<WatchItem>(WATCH_QUEUE_EVENTS, () => 1);
    try {
      const sandbox = this.sandboxOf(ctx);
      if ([...this.all.values()].filter((w) => w.sandbox === sandbox).length >= MAX_WATCHERS_PER_SANDBOX) {
        throw new ConnectError(`this sandbox has ${MAX_WATCHERS_PER_SANDBOX} watchers already: remove one (RemoveWatcher) first`, Code.ResourceExhausted);
      }
      const w = await openWatch(this.env, ctx, req.path, req.recursive, q);
      const id = randomUUID();
      this.all.set(id, { sandbox: w.sandbox, q, lease: w.lease, stop: w.stop, polledAt: Date.now() });
      return { watcherId: id };
    } catch (e) {
      q.close();
      throw toConnectError(e);
    }
  }

  /** What happened since the last call; an overflow or a watch that failed ends the watcher with the error. */
  events(watcherId: string, ctx: HandlerContext): { events: { name: string; type: EventType }[] } {
    const w = this.find(watcherId, ctx);
    w.polledAt = Date.now();
    const events: { name: string; type: EventType }[] = [];
    for (const item of w.q.drain()) {
      if (item.kind === "event" && item.e.type !== "overflow") events.push(filesystemEvent(item.e));
      else {
        this.drop(watcherId);
        if (item.kind === "end") break;
        throw item.kind === "failed" ? toConnectError(item.error) : lostEvents();
      }
    }
    return { events };
  }

  remove(watcherId: string, ctx: HandlerContext): Record<string, never> {
    this.find(watcherId, ctx);
    this.drop(watcherId);
    return {};
  }

  /** Ends every watcher (the listener closing). */
  close(): void {
    clearInterval(this.sweep);
    for (const id of [...this.all.keys()]) this.drop(id);
  }

  private find(watcherId: string, ctx: HandlerContext): Watcher {
    const sandbox = this.sandboxOf(ctx);
    const w = this.all.get(watcherId);
    if (!w || w.sandbox !== sandbox) throw new ConnectError(`watcher with id ${watcherId} not found`, Code.NotFound);
    return w;
  }

  /** The sandbox the request names, its token checked. */
  private sandboxOf(ctx: HandlerContext): string {
    try {
      return envdTarget(this.env, (h) => ctx.requestHeader.get(h) ?? undefined).record.id;
    } catch (e) {
      throw toConnectError(e);
    }
  }

  private drop(id: string): void {
    const w = this.all.get(id);
    if (!w) return;
    this.all.delete(id);
    w.q.close();
    void w.stop().catch(() => {});
    w.lease.close();
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, w] of this.all) if (now - w.polledAt > this.idleMs) this.drop(id);
  }
}
