import type { Duplex } from "node:stream";
import type { AcceptConnection, RejectConnection, ServerChannel, TcpipRequestInfo } from "ssh2";
import type { AgentClient } from "../../agent/client.js";

/** Where `ssh -L PORT:HOST:PORT` may point: the sandbox's own loopback (the agent's connect reaches nothing else). */
const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1", "ip6-localhost"]);
/** Forwarded connections one SSH connection may have open at once. */
export const MAX_FORWARDS = 64;

/**
 * One `direct-tcpip` channel (ssh -L, -W): a TCP connection to the
 * sandbox's loopback through the agent's connect stream, on an agent
 * connection of its own, so a forward whose reader is slow pauses only
 * itself (the host side pauses a whole agent connection for a full
 * consumer) and not the shell or sftp of the same SSH connection. The
 * channel is accepted only once the sandbox's socket is connected: a port
 * nothing listens on is refused as sshd refuses it ("open failed").
 * Bytes go both ways with each side's backpressure (pipe); either side
 * closing closes the other and the agent connection.
 */
export async function forwardTcp(
  info: TcpipRequestInfo,
  accept: AcceptConnection<ServerChannel>,
  reject: RejectConnection,
  connectAgent: () => Promise<AgentClient>,
): Promise<void> {
  if (!LOOPBACK.has(info.destIP) || !Number.isInteger(info.destPort) || info.destPort < 1 || info.destPort > 65535) return reject();
  let agent: AgentClient;
  try {
    agent = await connectAgent();
  } catch {
    return reject();
  }
  let sock: Duplex;
  try {
    sock = await agent.connectTcp(info.destPort);
  } catch {
    agent.close();
    return reject();
  }
  const channel = accept();
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    sock.destroy();
    channel.destroy();
    agent.close();
  };
  sock.on("error", close);
  channel.on("error", close);
  sock.on("close", close);
  channel.on("close", close);
  sock.pipe(channel); // the sandbox's EOF ends the channel
  channel.pipe(sock); // the client's EOF half-closes the socket
}
