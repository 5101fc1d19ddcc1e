// The VM agent multiplexer against a real corral-agent speaking on one
// socketpair (as it does on a guest's virtio-serial port): several host
// clients share it without seeing or touching each other's streams.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { AgentClient } from "../../agent/client.js";
import { encodeFrame, FrameDecoder } from "../../agent/protocol.js";
import { nativeBinary } from "../../host/native.js";
import { processRunning } from "../../host/process.js";
import { AgentMux } from "./mux.js";

describe("AgentMux", () => {
  let dir: string;
  let agent: ChildProcess;
  let server: net.Server;
  let mux: AgentMux;
  let sock: string;

  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-mux-"));
    sock = path.join(dir, "agent.sock");
    agent = spawn(nativeBinary("corral-agent"), ["--fd", "3"], { stdio: ["ignore", "inherit", "inherit", "pipe"] });
    mux = new AgentMux(agent.stdio[3] as net.Socket);
    server = net.createServer((s) => mux.attach(s));
    await new Promise<void>((r) => server.listen(sock, r));
  });
  after(async () => {
    server.close();
    mux.close();
    agent.kill("SIGKILL");
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("routes each client's streams back to it, though they use the same ids", async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => AgentClient.connect(sock)));
    try {
      const runs = await Promise.all(clients.flatMap((c, i) => Array.from({ length: 5 }, (_, j) => c.run({ cmd: `echo ${i}-${j}` }))));
      runs.forEach((r, k) => assert.equal(r.stdout.toString(), `${Math.floor(k / 5)}-${k % 5}\n`));
    } finally {
      clients.forEach((c) => c.close());
    }
  });

  it("kills a lost client's commands unless keepAlive, like a lost agent connection", async () => {
    const a = await AgentClient.connect(sock);
    const pidFile = path.join(dir, "victim.pid");
    const keptFile = path.join(dir, "kept.pid");
    void a.run({ cmd: `echo $$ > ${pidFile}; exec sleep 300` }).catch(() => {});
    void a.run({ cmd: `echo $$ > ${keptFile}; exec sleep 300`, keepAlive: true }).catch(() => {});
    for (let i = 0; i < 100; i++) {
      if ((await fsp.readFile(pidFile, "utf8").catch(() => "")) && (await fsp.readFile(keptFile, "utf8").catch(() => ""))) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const victim = Number(await fsp.readFile(pidFile, "utf8"));
    const kept = Number(await fsp.readFile(keptFile, "utf8"));
    a.close();
    const alive = processRunning; // zombies count as gone (DESIGN.md: pid 1 here does not reap)
    for (let i = 0; i < 100 && alive(victim); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(victim), false, "the lost client's exec still runs");
    assert.equal(alive(kept), true, "the keepAlive exec was killed");
    process.kill(kept, "SIGKILL");
  });

  it("does not let one client signal another's exec", async () => {
    const a = await AgentClient.connect(sock);
    const b = await AgentClient.connect(sock);
    try {
      const h = a.exec({ cmd: "sleep 2; echo survived" }, {});
      await new Promise((r) => setTimeout(r, 100));
      // b has no stream 1 of its own: the mux must not map it onto a's.
      await assert.rejects(b.signal(1, 9), /ESRCH|no such exec/);
      const r = await h.result;
      assert.equal(r.exitCode, 0);
    } finally {
      a.close();
      b.close();
    }
  });

  it("drops a client that breaks framing and keeps serving the others", async () => {
    const good = await AgentClient.connect(sock);
    const bad = net.connect(sock);
    await new Promise((r) => bad.once("connect", r));
    const frames: Buffer[] = [];
    const dec = new FrameDecoder();
    bad.on("data", (c: Buffer) => dec.push(c).forEach((f) => frames.push(Buffer.from(JSON.stringify(f.header)))));
    bad.write(Buffer.from([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]));
    await new Promise((r) => bad.once("close", r));
    assert.match(Buffer.concat(frames).toString(), /EPROTO/);
    // A well-formed frame from a new client with a bad id gets EPROTO but keeps its connection.
    const raw = net.connect(sock);
    await new Promise((r) => raw.once("connect", r));
    raw.write(encodeFrame({ op: "hello", id: -4 }));
    const reply = await new Promise<string>((r) => raw.once("data", (c: Buffer) => r(c.toString())));
    assert.match(reply, /EPROTO/);
    raw.destroy();
    try {
      assert.equal((await good.run({ cmd: "echo still" })).stdout.toString(), "still\n");
    } finally {
      good.close();
    }
  });
});

