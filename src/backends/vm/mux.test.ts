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

  it("carries terminals, attach streams, stdin and signals by pid, and watches", async () => {
    const a = await AgentClient.connect(sock);
    const b = await AgentClient.connect(sock);
    try {
      const out: Buffer[] = [];
      const h = a.exec({ argv: ["sh", "-c", "read l; stty size; echo got-$l"], pty: { rows: 5, cols: 7 }, keepAlive: true }, { onStdout: (d) => out.push(d) });
      const pid = await h.pid;
      await h.resize({ rows: 9, cols: 11 }); // its target is a's own stream, renamed upstream
      await assert.rejects(b.resize(pid + 100000, { rows: 1, cols: 1 }), { errno: "ESRCH" });
      const seen: Buffer[] = [];
      const att = b.attach(pid, { onStdout: (d) => seen.push(d) });
      assert.equal(await att.pid, pid);
      await b.writeStdinPid(pid, Buffer.from("x\n"));
      const r = await att.result;
      assert.equal(r.exitCode, 0);
      assert.match(Buffer.concat(seen).toString(), /9 11[\s\S]*got-x/);
      assert.match(Buffer.concat(out).toString(), /got-x/);

      const wdir = await fsp.mkdtemp(path.join(dir, "w-"));
      const events: string[] = [];
      const w = b.watch(wdir, {}, (e) => void events.push(`${e.type} ${e.name}`));
      await w.ready;
      await fsp.writeFile(path.join(wdir, "f"), "");
      for (let i = 0; i < 100 && !events.includes("create f"); i++) await new Promise((res) => setTimeout(res, 20));
      assert.ok(events.includes("create f"), events.join(","));
      await w.stop();
    } finally {
      a.close();
      b.close();
    }
  });

  it("pauses only the streams of a client that falls behind: the others' go on", async () => {
    const slow = await AgentClient.connect(sock);
    const other = await AgentClient.connect(sock);
    try {
      let got = 0;
      const release = slow.hold(); // slow reads nothing for now
      const big = slow.exec({ cmd: "head -c 20000000 /dev/zero" }, { onStdout: (b) => void (got += b.length) });
      await new Promise((r) => setTimeout(r, 500));
      const r = await other.run({ cmd: "echo other" });
      assert.equal(r.stdout.toString(), "other\n");
      release();
      assert.equal((await big.result).exitCode, 0);
      assert.equal(got, 20_000_000);
    } finally {
      slow.close();
      other.close();
    }
  });

  it("ends a lost client's attach and watch streams upstream", async () => {
    const a = await AgentClient.connect(sock);
    const h = a.exec({ cmd: "sleep 30", keepAlive: true }, {});
    const pid = await h.pid;
    const b = await AgentClient.connect(sock);
    void b.attach(pid, {}).result.catch(() => {});
    const w = b.watch(dir, {}, () => {});
    await w.ready;
    b.close();
    await new Promise((r) => setTimeout(r, 100));
    const c = await AgentClient.connect(sock);
    try {
      const procs = await c.processes();
      assert.ok(procs.some((p) => p.pid === pid && p.keepAlive));
      await c.signalPid(pid, 9);
      assert.equal((await h.result).signal, 9);
      // The agent ended b's streams: it holds no inotify instance any more.
      const fds = await fsp.readdir(`/proc/${agent.pid}/fd`);
      const links = await Promise.all(fds.map((f) => fsp.readlink(`/proc/${agent.pid}/fd/${f}`).catch(() => "")));
      assert.equal(links.filter((l) => l.includes("inotify")).length, 0, links.join(","));
    } finally {
      a.close();
      c.close();
    }
  });
});
