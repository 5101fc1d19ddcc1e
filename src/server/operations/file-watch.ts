import type { AgentClient, WatchEvent, WatchHandle } from "../../agent/client.js";
import { toHttpError } from "../http-errors.js";
import type { EventSink, EventStream } from "./types.js";
import { sandboxAgent } from "./sandbox-agent.js";
import { noContent, type Operations } from "./types.js";

/**
 * Renaming and watching files inside a sandbox, through its agent (which
 * resolves both paths inside the sandbox root, and runs inotify). A watch
 * has an agent connection of its own for its life: its reader falling
 * behind holds that connection, the agent stops reading events, and the
 * kernel's queue reports what it dropped as an `overflow` event.
 */
export const fileWatchOperations: Operations = {
  async renameFile(ctx, req) {
    const body = req.body as { from: string; to: string; noReplace?: boolean };
    const client = await sandboxAgent(ctx, req);
    try {
      await client.rename(body.from, body.to, { noReplace: body.noReplace ?? false });
    } finally {
      client.close();
    }
    return noContent;
  },

  async watchDir(ctx, req) {
    const path = req.query["path"] as string;
    const client = await sandboxAgent(ctx, req);
    const events = new WatchEvents(client);
    const handle = client.watch(path, { recursive: req.query["recursive"] === true }, (e) => events.event(e));
    events.handle = handle;
    try {
      await handle.ready;
    } catch (e) {
      client.close();
      throw e;
    }
    return { status: 200, events };
  },
};

class WatchEvents implements EventStream {
  handle: WatchHandle | undefined;
  private sink: EventSink | undefined;
  private early: Record<string, unknown>[] = [];
  private release: (() => void) | undefined;
  private over = false;

  constructor(private readonly client: AgentClient) {}

  event(e: WatchEvent): void {
    const ev = e.type === "overflow" ? { type: e.type } : { type: e.type, name: e.name, dir: e.dir };
    if (this.sink) this.sink.event(ev);
    else this.early.push(ev);
  }

  start(sink: EventSink): void {
    this.sink = sink;
    sink.event({ type: "watching" });
    for (const e of this.early.splice(0)) sink.event(e);
    void this.handle?.done.then(
      () => this.end({ type: "done" }),
      (e: unknown) => this.end({ type: "error", error: toHttpError(e).body.error }),
    );
  }

  private end(last: Record<string, unknown>): void {
    if (this.over) return;
    this.over = true;
    this.resume();
    this.client.close();
    this.sink?.end(last);
  }

  pause(): void {
    if (!this.over) this.release ??= this.client.hold();
  }

  resume(): void {
    const r = this.release;
    this.release = undefined;
    r?.();
  }

  cancel(): void {
    if (this.over) return;
    this.over = true;
    this.resume();
    this.client.close(); // the agent ends the watch with the connection
  }
}

