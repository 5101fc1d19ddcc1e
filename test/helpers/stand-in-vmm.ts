// A stand-in for a VMM's hybrid vsock socket (Cloud Hypervisor,
// Firecracker), which no VMM on these hosts serves: its part of the
// documented handshake (read `CONNECT <port>\n`, answer `OK <hostport>\n`
// or close) in front of a real corral-agent's unix socket, so the agent
// protocol runs end to end through it.
import net from "node:net";
import { fileURLToPath } from "node:url";

/**
 * Serves `uds` as a VMM does: each connection's `CONNECT <port>` line goes
 * to `answer` with the connection paused (bytes after the line stay
 * unread); any other line closes it. Resolves once it listens.
 */
export function serveHybridVsock(uds: string, answer: (port: number, conn: net.Socket) => void): Promise<net.Server> {
  const srv = net.createServer((conn) => {
    let line = "";
    const onData = (c: Buffer) => {
      line += c.toString("latin1");
      const nl = line.indexOf("\n");
      if (nl < 0) return;
      conn.off("data", onData);
      conn.pause();
      const m = /^CONNECT ([0-9]+)$/.exec(line.slice(0, nl));
      if (!m) conn.destroy();
      else answer(Number(m[1]), conn);
    };
    conn.on("data", onData);
  });
  return new Promise((resolve) => srv.listen(uds, () => resolve(srv)));
}

/** The VMM's answer when the guest listens: `OK`, then bytes relayed both ways to the agent at `agentSocket`. */
export function relayToAgent(conn: net.Socket, agentSocket: string): void {
  const up = net.connect(agentSocket, () => {
    conn.write("OK 1073741824\n");
    conn.pipe(up);
    up.pipe(conn);
    conn.resume();
  });
  up.on("error", () => conn.destroy());
  conn.on("error", () => up.destroy());
  conn.on("close", () => up.destroy());
}

/** The stand-in as a process of its own, for a shim to run as its VMM binary: `node STAND_IN_VMM_MAIN UDS AGENT_SOCKET` (stand-in-vmm-main.ts). */
export const STAND_IN_VMM_MAIN = fileURLToPath(new URL("./stand-in-vmm-main.js", import.meta.url));
