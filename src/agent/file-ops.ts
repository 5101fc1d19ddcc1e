import { Readable } from "node:stream";
import { CHUNK, type Header } from "./protocol.js";
import type { DirEntry, FileStat } from "./client-types.js";
import { agentError, type AgentConnection } from "./connection.js";

/** Streams `source` into a file inside the sandbox, CHUNK bytes a frame, waiting while the socket drains. */
export async function writeFile(
  conn: AgentConnection,
  path: string,
  source: Buffer | string | AsyncIterable<Buffer | string>,
  opts: { mode?: number; append?: boolean; mkdirs?: boolean },
): Promise<{ size: number }> {
  let failed: Error | undefined;
  let settle!: { resolve: (h: Header) => void; reject: (e: Error) => void };
  const done = new Promise<Header>((resolve, reject) => (settle = { resolve, reject }));
  const id = conn.open({
    frame: (f) => {
      conn.end(id);
      if (f.header["ev"] === "ok") settle.resolve(f.header);
      else settle.reject((failed = agentError(f.header)));
    },
    fail: (e) => settle.reject((failed = e)),
  });
  done.catch(() => {});
  conn.send({ op: "write", id, path, mode: opts.mode ?? 0o644, append: opts.append ?? false, mkdirs: opts.mkdirs ?? false });
  const chunks: AsyncIterable<Buffer | string> | Iterable<Buffer | string> =
    typeof source === "string" || Buffer.isBuffer(source) ? [source] : source;
  for await (const c of chunks) {
    const b = typeof c === "string" ? Buffer.from(c) : c;
    for (let o = 0; o < b.length; o += CHUNK) {
      if (failed) throw failed;
      await conn.sendWithBackpressure({ op: "data", id }, b.subarray(o, o + CHUNK));
    }
  }
  if (!failed) conn.send({ op: "end", id });
  const h = await done;
  return { size: Number(h["size"]) };
}

/**
 * Streams a file out of the sandbox. The returned Readable applies
 * backpressure by pausing the connection when the consumer falls behind.
 */
export function readFile(conn: AgentConnection, path: string, opts: { offset?: number; length?: number }): Readable {
  const stream = new Readable({ read: () => conn.resumeUnlessHeld() });
  const id = conn.open({
    frame: (f) => {
      if (f.header["ev"] === "data") {
        if (!stream.push(f.payload)) conn.pauseReading();
      } else if (f.header["ev"] === "end") {
        conn.end(id);
        stream.push(null);
      } else {
        conn.end(id);
        stream.destroy(agentError(f.header));
      }
    },
    fail: (e) => stream.destroy(e),
  });
  stream.on("close", () => conn.resumeUnlessHeld());
  conn.send({ op: "read", id, path, offset: opts.offset ?? 0, length: opts.length ?? -1 });
  return stream;
}

export async function stat(conn: AgentConnection, path: string, follow: boolean): Promise<FileStat> {
  const h = await conn.request({ op: "stat", path, follow }, "stat");
  return {
    type: h["type"] as FileStat["type"],
    size: Number(h["size"]),
    mode: Number(h["mode"]),
    uid: Number(h["uid"]),
    gid: Number(h["gid"]),
    mtimeMs: Number(h["mtimeMs"]),
    target: typeof h["target"] === "string" ? h["target"] : null,
  };
}

/** A directory's entries, sorted by name (the agent sends them in readdir's order). */
export function list(conn: AgentConnection, path: string): Promise<DirEntry[]> {
  return new Promise((resolve, reject) => {
    const entries: DirEntry[] = [];
    const id = conn.open({
      frame: (f) => {
        const ev = f.header["ev"];
        if (ev === "entry") {
          entries.push({
            name: String(f.header["name"]),
            type: f.header["type"] as DirEntry["type"],
            size: Number(f.header["size"]),
            mode: Number(f.header["mode"]),
            mtimeMs: Number(f.header["mtimeMs"]),
          });
          return;
        }
        conn.end(id);
        if (ev === "end") resolve(entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
        else reject(agentError(f.header));
      },
      fail: reject,
    });
    conn.send({ op: "list", id, path });
  });
}
