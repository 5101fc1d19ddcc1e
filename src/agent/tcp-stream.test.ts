// AgentClient.connectTcp against a real corral-agent (outside any sandbox:
// its loopback is the host's) and servers the test runs on 127.0.0.1: an
// echo both ways with half-closes, many megabytes through the flow
// control, refused ports, and a bad port refused by the agent itself.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { SandboxOperationError } from "../core/errors.js";
import { AgentClient } from "./client.js";
import { startAgent, type TestAgent } from "../../test/helpers/native-agent.js";

let dir: string;
let agent: TestAgent;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-tcp-"));
  agent = await startAgent(dir);
});

after(() => {
  agent.proc.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

async function serve(t: { after(fn: () => void): void }, onConn: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer(onConn);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

const readAll = (s: NodeJS.ReadableStream) =>
  new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on("data", (b: Buffer) => parts.push(b));
    s.on("end", () => resolve(Buffer.concat(parts)));
    s.on("error", reject);
  });

test("echoes both ways and half-closes in order", async (t) => {
  const port = await serve(t, (s) => s.pipe(s));
  const c = await AgentClient.connect(agent.socket, 5000);
  t.after(() => c.close());
  const d = await c.connectTcp(port);
  d.write("hello ");
  d.end("world");
  assert.equal((await readAll(d)).toString(), "hello world");
});

test("carries 24 MiB each way through the flow control", async (t) => {
  const size = 24 * 1024 * 1024;
  const port = await serve(t, (s) => s.pipe(s));
  const c = await AgentClient.connect(agent.socket, 5000);
  t.after(() => c.close());
  const d = await c.connectTcp(port);
  const data = Buffer.alloc(size, 7);
  for (let i = 0; i < size; i += 4096) data[i] = i % 251;
  const got = readAll(d);
  d.end(data);
  const back = await got;
  assert.equal(back.length, size);
  assert.equal(createHash("sha256").update(back).digest("hex"), createHash("sha256").update(data).digest("hex"));
});

test("runs several streams on one connection at once", async (t) => {
  const port = await serve(t, (s) => s.end(`port ${(s.address() as net.AddressInfo).port}\n`));
  const c = await AgentClient.connect(agent.socket, 5000);
  t.after(() => c.close());
  const all = await Promise.all([1, 2, 3, 4].map(async () => {
    const d = await c.connectTcp(port);
    d.end();
    return (await readAll(d)).toString();
  }));
  assert.deepEqual(all, Array(4).fill(`port ${port}\n`));
});

test("a port nothing listens on is ECONNREFUSED; port 0 is refused by the agent", async (t) => {
  const port = await serve(t, () => {});
  const c = await AgentClient.connect(agent.socket, 5000);
  t.after(() => c.close());
  // A port just freed: nothing listens there now.
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const free = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  await assert.rejects(c.connectTcp(free), (e: unknown) => e instanceof SandboxOperationError && e.errno === "ECONNREFUSED");
  await assert.rejects(c.connectTcp(0), (e: unknown) => e instanceof SandboxOperationError && /port/.test(e.message));
  // The connection still serves others.
  const d = await c.connectTcp(port);
  d.destroy();
});
