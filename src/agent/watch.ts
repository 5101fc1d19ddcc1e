import type { WatchEvent } from "./client-types.js";
import { agentError, type AgentConnection } from "./connection.js";

/** A directory watch (AgentClient.watch): in place once `ready` resolves; `done` settles when it ends. */
export interface WatchHandle {
  /** Resolves once the agent watches (events from then on are reported); rejects as the watch could not start (ENOENT, ENOTDIR ...). */
  readonly ready: Promise<void>;
  /** Resolves when the watch ends (stop, or the directory removed); rejects if the connection goes. */
  readonly done: Promise<void>;
  /** Ends the watch. */
  stop(): Promise<void>;
}

/**
 * Watches `path` (and with `recursive` the directories under it) through
 * the agent's inotify: each event goes to `onEvent`, whose promise holds
 * the connection (the agent then stops reading events, and an overflow
 * event says when the kernel's queue dropped some meanwhile).
 */
export function watchDir(conn: AgentConnection, path: string, opts: { recursive?: boolean }, onEvent: (e: WatchEvent) => unknown): WatchHandle {
  let ready!: { resolve: () => void; reject: (e: Error) => void };
  let done!: { resolve: () => void; reject: (e: Error) => void };
  const readyP = new Promise<void>((resolve, reject) => (ready = { resolve, reject }));
  const doneP = new Promise<void>((resolve, reject) => (done = { resolve, reject }));
  readyP.catch(() => {});
  doneP.catch(() => {});
  let ended = false;
  const id = conn.open({
    frame: (f) => {
      const ev = f.header["ev"];
      if (ev === "watching") return ready.resolve();
      if (ev === "fsevent") {
        const type = f.header["type"] as WatchEvent["type"];
        conn.holdFor(onEvent({ type, name: typeof f.header["name"] === "string" ? f.header["name"] : "", dir: f.header["dir"] === true }));
        return;
      }
      ended = true;
      conn.end(id);
      if (ev === "end") {
        ready.resolve();
        done.resolve();
      } else {
        const e = agentError(f.header);
        ready.reject(e);
        done.reject(e);
      }
    },
    fail: (e) => {
      ended = true;
      ready.reject(e);
      done.reject(e);
    },
  });
  conn.send({ op: "watch", id, path, recursive: opts.recursive ?? false });
  return {
    ready: readyP,
    done: doneP,
    async stop() {
      if (!ended && !conn.closed) conn.send({ op: "end", id });
      await doneP.catch(() => {});
    },
  };
}
