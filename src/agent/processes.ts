import { CHUNK } from "./protocol.js";
import type { ProcessInfo } from "./client-types.js";
import { agentError, type AgentConnection } from "./connection.js";

/** The commands the agent runs (procs: one entry each, then end). */
export function processes(conn: AgentConnection): Promise<ProcessInfo[]> {
  return new Promise((resolve, reject) => {
    const out: ProcessInfo[] = [];
    const id = conn.open({
      frame: (f) => {
        const h = f.header;
        if (h["ev"] === "entry") {
          out.push({
            pid: Number(h["pid"]),
            argv: Array.isArray(h["argv"]) ? (h["argv"] as unknown[]).map(String) : [],
            cwd: String(h["cwd"]),
            tag: typeof h["tag"] === "string" ? h["tag"] : null,
            pty: h["pty"] === true,
            keepAlive: h["keepAlive"] === true,
            detached: h["detached"] === true,
            truncated: h["truncated"] === true,
          });
          return;
        }
        conn.end(id);
        if (h["ev"] === "end") resolve(out.sort((a, b) => a.pid - b.pid));
        else reject(agentError(h));
      },
      fail: reject,
    });
    conn.send({ op: "procs", id });
  });
}

/**
 * Writes to a command's stdin by its pid, CHUNK bytes a frame. Each frame
 * takes a fresh id: a stdin by pid opens no stream and has no reply.
 */
export async function writeStdinPid(conn: AgentConnection, pid: number, data: Buffer | undefined, eof: boolean): Promise<void> {
  const oneOff = () => {
    const id = conn.open({ frame: () => {}, fail: () => {} });
    conn.end(id);
    return id;
  };
  for (let o = 0; data && o < data.length; o += CHUNK) {
    await conn.sendWithBackpressure({ op: "stdin", id: oneOff(), pid }, data.subarray(o, o + CHUNK));
  }
  if (eof) conn.send({ op: "stdin", id: oneOff(), pid, eof: true });
}
