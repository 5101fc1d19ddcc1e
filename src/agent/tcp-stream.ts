import { Duplex } from "node:stream";
import { CHUNK } from "./protocol.js";
import { agentError, type AgentConnection } from "./connection.js";

/**
 * A TCP connection to `port` on the sandbox's own loopback, through the
 * agent (docs/protocol.md, connect), as a Duplex: what is written goes to
 * the socket in CHUNK frames (waiting while the agent's socket drains),
 * what the socket sends is read (the agent connection pauses while the
 * consumer is full, and the agent then stops reading the socket), end()
 * half-closes it, destroy() drops the stream (the agent closes the socket
 * when the connection that carries it closes). Resolves once connected;
 * rejects with the agent's error (ECONNREFUSED: nothing listens).
 */
export function connectTcp(conn: AgentConnection, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let connected = false;
    const duplex = new Duplex({
      read: () => conn.resumeUnlessHeld(),
      write(chunk: Buffer, _enc, cb) {
        (async () => {
          for (let o = 0; o < chunk.length; o += CHUNK) await conn.sendWithBackpressure({ op: "data", id }, chunk.subarray(o, o + CHUNK));
        })().then(() => cb(), cb);
      },
      final(cb) {
        try {
          conn.send({ op: "end", id });
          cb();
        } catch (e) {
          cb(e as Error);
        }
      },
      destroy(err, cb) {
        // The agent closes its socket (a half-closed one too); nothing answers.
        if (!conn.closed) conn.send({ op: "close", id });
        conn.end(id);
        conn.resumeUnlessHeld();
        cb(err);
      },
    });
    const id = conn.open({
      frame: (f) => {
        const ev = f.header["ev"];
        if (ev === "connected") {
          connected = true;
          resolve(duplex);
        } else if (ev === "data") {
          if (!duplex.push(f.payload)) conn.pauseReading();
        } else if (ev === "end") {
          duplex.push(null);
        } else {
          conn.end(id);
          const e = agentError(f.header);
          if (connected) duplex.destroy(e);
          else reject(e);
        }
      },
      fail: (e) => (connected ? duplex.destroy(e) : reject(e)),
    });
    conn.send({ op: "connect", id, port });
  });
}
