// AgentClient against a real corral-agent on a unix socket (outside any
// sandbox): its flow control (hold, a callback's promise, a file read's
// pause), its streams, and its errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SandboxOperationError } from "../core/errors.js";
import { AgentClient, AgentUnavailableError } from "./client.js";
import { startAgent, type TestAgent } from "../../test/helpers/native-agent.js";

let dir: string;
let agent: TestAgent;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-client-"));
  agent = await startAgent(dir);
});

after(() => {
  agent.proc.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

async function client(t: { after(fn: () => void): void }): Promise<AgentClient> {
  const c = await AgentClient.connect(agent.socket, 5000);
  t.after(() => c.close());
  return c;
}

/**
 * Far more than the agent (OUT_HIGH, 1 MiB), the socket and the pipe can
 * buffer between them, so a command writing it cannot end while the
 * connection is held.
 */
const BIG = 32 * 1024 * 1024;
/** A command that writes BIG bytes, then leaves `marker` behind. */
const bigThenMark = (marker: string) => `head -c ${BIG} /dev/zero; touch ${marker}`;
const settle = () => new Promise((r) => setTimeout(r, 300));

test("a callback's promise holds the connection: the command waits until it settles", async (t) => {
  const c = await client(t);
  const marker = path.join(dir, "cb.done");
  let bytes = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let first = true;
  const h = c.exec(
    { cmd: bigThenMark(marker) },
    {
      onStdout: (b) => {
        bytes += b.length;
        if (!first) return undefined;
        first = false;
        return gate;
      },
    },
  );
  await h.pid;
  await settle();
  assert.equal(fs.existsSync(marker), false, "held: the command blocks on its pipe");
  release();
  const r = await h.result;
  assert.equal(r.exitCode, 0);
  assert.equal(bytes, BIG, "nothing lost while held");
  assert.ok(fs.existsSync(marker));
});

test("hold nests: the connection reads again only when every hold is released", async (t) => {
  const c = await client(t);
  const marker = path.join(dir, "hold.done");
  let bytes = 0;
  const outer = c.hold();
  const h = c.exec({ cmd: bigThenMark(marker) }, { onStdout: (b) => void (bytes += b.length) });
  const inner = h.hold();
  outer();
  outer(); // a second release of the same hold does nothing
  await settle();
  assert.equal(fs.existsSync(marker), false, "one hold is still on");
  inner();
  assert.equal((await h.result).exitCode, 0);
  assert.equal(bytes, BIG);
});

test("a file read does not resume a held connection", async (t) => {
  const c = await client(t);
  fs.writeFileSync(path.join(dir, "root", "held.txt"), "held contents");
  const release = c.hold();
  const parts: Buffer[] = [];
  const stream = c.readFile("/held.txt");
  stream.on("data", (b: Buffer) => parts.push(b));
  const ended = new Promise((r) => stream.once("end", r));
  await settle();
  assert.equal(parts.length, 0, "no frame read while held");
  release();
  await ended;
  assert.equal(Buffer.concat(parts).toString(), "held contents");
});

test("files: a large write waits for the socket, and reads back whole", async (t) => {
  const c = await client(t);
  const data = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
  async function* pieces() {
    for (let o = 0; o < data.length; o += 100_000) yield data.subarray(o, o + 100_000);
  }
  assert.deepEqual(await c.writeFile("/d/big.bin", pieces(), { mkdirs: true, mode: 0o600 }), { size: data.length });
  assert.ok((await c.readFileBuffer("/d/big.bin")).equals(data));
  const st = await c.stat("/d/big.bin");
  assert.deepEqual([st.type, st.size, st.mode], ["file", data.length, 0o600]);
  await c.writeFile("/d/a.txt", "a");
  await c.mkdir("/d/c");
  assert.deepEqual((await c.list("/d")).map((e) => e.name), ["a.txt", "big.bin", "c"], "sorted by name");
  await c.remove("/d", { recursive: true });
  await assert.rejects(c.stat("/d"), (e: unknown) => e instanceof SandboxOperationError && e.errno === "ENOENT");
});

test("commands: stdin, a signal to the command, and the exit", async (t) => {
  const c = await client(t);
  const out: Buffer[] = [];
  const cat = c.exec({ argv: ["cat"], stdin: true }, { onStdout: (b) => void out.push(b) });
  await cat.writeStdin("to cat\n");
  await cat.closeStdin();
  assert.equal((await cat.result).exitCode, 0);
  assert.equal(Buffer.concat(out).toString(), "to cat\n");
  const sleeper = c.exec({ argv: ["sleep", "60"] });
  await sleeper.pid;
  await sleeper.kill(15);
  assert.deepEqual(await sleeper.result, { exitCode: null, signal: 15, timedOut: false });
});

test("a closed connection fails what is pending and what comes after", async (t) => {
  const c = await client(t);
  const h = c.exec({ argv: ["sleep", "60"] });
  await h.pid;
  c.close();
  assert.equal(c.closed, true);
  await assert.rejects(h.result, AgentUnavailableError);
  await assert.rejects(c.hello(), AgentUnavailableError);
  assert.throws(() => c.exec({ argv: ["true"] }), AgentUnavailableError);
});
