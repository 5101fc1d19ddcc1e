// The shim's agent.sock for Cloud Hypervisor and Firecracker VMs: each
// client gets a hybrid vsock connection of its own. No such VMM runs here,
// so a unix-socket server plays its part of the documented handshake
// (`CONNECT <port>\n` → `OK <n>\n`, or close while the guest has no
// listener) and relays to a real corral-agent; the agent protocol runs end
// to end through the bridge.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { AgentClient } from "../../agent/client.js";
import { AGENT_VSOCK_PORT } from "./plan.js";
import { bridgeToVsock } from "./vsock-bridge.js";
import { startAgent, type TestAgent } from "../../../test/helpers/native-agent.js";
import { relayToAgent, serveHybridVsock } from "../../../test/helpers/stand-in-vmm.js";

let dir: string;
let agent: TestAgent;
const servers: net.Server[] = [];
/** Connections the stand-in VMM accepted and relayed, per port. */
const accepted: number[] = [];

/** A VMM's hybrid vsock socket; `guestUp` says whether the guest listens yet. */
async function vmm(name: string, guestUp: () => boolean): Promise<string> {
  const uds = path.join(dir, name);
  const srv = await serveHybridVsock(uds, (port, conn) => {
    if (port !== AGENT_VSOCK_PORT || !guestUp()) return void conn.destroy();
    accepted.push(port);
    relayToAgent(conn, agent.socket);
  });
  servers.push(srv);
  return uds;
}

/** The shim's side: agent.sock bridged to `uds`. */
function shimSocket(name: string, uds: string): Promise<string> {
  const sock = path.join(dir, name);
  const srv = net.createServer((s) => bridgeToVsock(s, uds, AGENT_VSOCK_PORT));
  servers.push(srv);
  return new Promise((resolve) => srv.listen(sock, () => resolve(sock)));
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-vbridge-"));
  agent = await startAgent(dir, "real-agent.sock");
});

after(() => {
  for (const s of servers) s.close();
  agent.proc.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("each client of agent.sock gets its own vsock connection; the protocol runs through", async () => {
  const uds = await vmm("up.vsock", () => true);
  const sock = await shimSocket("agent-up.sock", uds);
  const before = accepted.length;
  const [a, b] = await Promise.all([AgentClient.connect(sock, 2000), AgentClient.connect(sock, 2000)]);
  try {
    const [ra, rb] = await Promise.all([
      a.run({ argv: ["sh", "-c", "echo from-a; exit 4"] }),
      b.run({ argv: ["sh", "-c", "head -c 300000 /dev/zero"] }),
    ]);
    assert.deepEqual([ra.stdout.toString(), ra.exitCode], ["from-a\n", 4]);
    assert.equal(rb.stdout.length, 300_000, "a large output crosses whole");
    assert.equal((await a.hello()).pid, agent.proc.pid);
  } finally {
    a.close();
    b.close();
  }
  assert.equal(accepted.length - before, 2, "one vsock connection per client, no sharing");
});

test("while the guest does not listen, a client is closed, and gets through once it does", async () => {
  let up = false;
  const uds = await vmm("booting.vsock", () => up);
  const sock = await shimSocket("agent-booting.sock", uds);
  const early = await AgentClient.connect(sock, 2000);
  await assert.rejects(early.hello(), "the VMM refused the CONNECT: the client's connection ends");
  early.close();
  up = true;
  const late = await AgentClient.connect(sock, 2000);
  try {
    assert.equal((await late.hello()).pid, agent.proc.pid);
  } finally {
    late.close();
  }
});

test("no VMM socket at all (the VMM has not made it yet): the client is closed", async () => {
  const sock = await shimSocket("agent-none.sock", path.join(dir, "absent.vsock"));
  const c = await AgentClient.connect(sock, 2000);
  await assert.rejects(c.hello());
  c.close();
});
