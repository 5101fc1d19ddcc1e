// The host side of a hybrid vsock socket (Firecracker, Cloud Hypervisor).
// No hypervisor runs here, so a small unix-socket server plays the VMM's
// part of the documented handshake (read `CONNECT <port>\n`, answer
// `OK <hostport>\n` or close) and then relays bytes to a real corral-agent
// on its unix socket: the agent protocol itself is exercised end to end.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import { AgentClient } from "./client.js";
import { connectHybridVsock, VsockHandshakeError } from "./hybrid-vsock.js";
import { AGENT_VSOCK_PORT } from "../backends/vm/plan.js";
import { TimeoutError } from "../core/errors.js";
import { startAgent, type TestAgent } from "../../test/helpers/native-agent.js";
import { relayToAgent, serveHybridVsock } from "../../test/helpers/stand-in-vmm.js";

let dir: string;
let agent: TestAgent;
const servers: net.Server[] = [];

/** A VMM stand-in for the handshake: `answer` decides what a CONNECT gets. */
async function vmm(name: string, answer: (port: number, conn: net.Socket) => void): Promise<string> {
  const uds = path.join(dir, name);
  servers.push(await serveHybridVsock(uds, answer));
  return uds;
}

/** The VMM's answer when the guest has a listener on the agent's port: relay to the agent. */
function toAgent(port: number, conn: net.Socket): void {
  if (port !== AGENT_VSOCK_PORT) conn.destroy();
  else relayToAgent(conn, agent.socket);
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-hvsock-"));
  agent = await startAgent(dir);
});

after(() => {
  for (const s of servers) s.close();
  agent.proc.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("connectVsock: handshake, then the agent protocol through the relay", async () => {
  const uds = await vmm("ok.vsock", toAgent);
  const c = await AgentClient.connectVsock(uds, AGENT_VSOCK_PORT, 5000);
  try {
    const h = await c.hello();
    assert.equal(h.version, 1);
    assert.equal(h.pid, agent.proc.pid);
    const r = await c.run({ argv: ["sh", "-c", "echo through-vsock; echo err >&2; exit 3"] });
    assert.equal(r.stdout.toString(), "through-vsock\n");
    assert.equal(r.stderr.toString(), "err\n");
    assert.equal(r.exitCode, 3);
    await c.writeFile("/f.txt", "x".repeat(200_000));
    assert.equal((await c.readFileBuffer("/f.txt")).length, 200_000);
  } finally {
    c.close();
  }
});

test("connectHybridVsock: bytes after the OK line stay in the stream", async () => {
  const uds = await vmm("extra.vsock", (_port, conn) => conn.end("OK 7\nfirst-bytes"));
  const s = await connectHybridVsock(uds, 1024);
  const rest: Buffer[] = [];
  s.on("data", (c: Buffer) => rest.push(c));
  s.resume();
  await new Promise((r) => s.once("end", r));
  assert.equal(Buffer.concat(rest).toString(), "first-bytes");
});

test("connectHybridVsock: a VMM that closes instead of answering is a clear error", async () => {
  const uds = await vmm("closed.vsock", (_port, conn) => conn.destroy());
  await assert.rejects(connectHybridVsock(uds, 1024), (e: unknown) => {
    assert.ok(e instanceof VsockHandshakeError, String(e));
    assert.match(e.message, /CONNECT 1024 refused: the VMM closed the connection without answering/);
    assert.match(e.message, /closed\.vsock/);
    return true;
  });
});

test("connectHybridVsock: an answer other than OK <port> is refused", async () => {
  const uds = await vmm("garbage.vsock", (_port, conn) => conn.end("NOPE\n"));
  await assert.rejects(connectHybridVsock(uds, 1024), /the VMM answered "NOPE", not "OK <port>"/);
});

test("connectVsock: the wrong port is refused until the deadline, naming the last reason", async () => {
  const uds = await vmm("wrongport.vsock", toAgent);
  await assert.rejects(AgentClient.connectVsock(uds, 2048, 300), (e: unknown) => {
    assert.ok(e instanceof TimeoutError, String(e));
    assert.match(e.message, /vsock port 2048 through .*wrongport\.vsock/);
    assert.match(e.message, /CONNECT 2048 refused/);
    return true;
  });
});

test("connectVsock: a path that is not a socket fails at once", async () => {
  const file = path.join(dir, "plain-file");
  fs.writeFileSync(file, "");
  await assert.rejects(AgentClient.connectVsock(file, 1024, 5000), /cannot reach the agent through .*plain-file.*not a socket/);
});
