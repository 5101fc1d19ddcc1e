import type net from "node:net";
import { CorralError } from "../core/errors.js";
import { connectUnixNoFollow } from "./unix-socket.js";

/**
 * The hypervisor would not open the vsock connection: nothing listens on
 * that port in the guest (yet), or the socket is not a hybrid vsock one.
 * Callers that wait for a booting guest retry on this.
 */
export class VsockHandshakeError extends CorralError {
  constructor(message: string) {
    super("agent_unavailable", message, 502);
  }
}

/** Longest answer line we wait for: "OK " and a u32 port, with room to spare. */
const MAX_LINE = 64;

/**
 * Opens a stream to guest vsock `port` through a "hybrid vsock" unix socket,
 * the host end Firecracker and Cloud Hypervisor give a vsock device: connect
 * to `uds`, write `CONNECT <port>\n`, and the VMM answers `OK <hostport>\n`
 * once the guest accepted; from then on the socket is the guest connection.
 * A VMM that cannot connect (no listener in the guest) closes the socket
 * instead of answering. Bytes after the OK line stay in the stream.
 */
export async function connectHybridVsock(uds: string, port: number, timeoutMs = 5000): Promise<net.Socket> {
  if (!Number.isInteger(port) || port < 1 || port > 0xfffffffe) throw new RangeError(`bad vsock port ${port}`);
  const s = await connectUnixNoFollow(uds);
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const fail = (why: string) => {
      cleanup();
      s.destroy();
      reject(new VsockHandshakeError(`hybrid vsock ${uds}: CONNECT ${port} refused: ${why}`));
    };
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const nl = got.indexOf(10);
      if (nl < 0) {
        if (got.length > MAX_LINE) fail(`no answer line in the first ${MAX_LINE} bytes`);
        return;
      }
      const line = got.subarray(0, nl).toString("latin1");
      if (!/^OK [0-9]+$/.test(line)) {
        fail(`the VMM answered ${JSON.stringify(line.slice(0, MAX_LINE))}, not "OK <port>"`);
        return;
      }
      cleanup();
      s.pause();
      const rest = got.subarray(nl + 1);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    const onEnd = () =>
      fail(`the VMM closed the connection without answering (is something listening on vsock port ${port} in the guest?)`);
    const onError = (e: Error) => fail(e.message);
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      s.off("data", onData);
      s.off("end", onEnd);
      s.off("close", onEnd);
      s.off("error", onError);
    };
    s.on("data", onData);
    s.once("end", onEnd);
    s.once("close", onEnd);
    s.once("error", onError);
    s.write(`CONNECT ${port}\n`);
  });
}
