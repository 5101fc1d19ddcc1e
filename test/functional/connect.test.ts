// /v1/connect spoken directly (the `ws` client, no SDK) to a real daemon:
// its answers, its errors, every kind of operation (JSON, events, bytes both
// ways), its flow control, and what a connection that goes away takes with it.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { ConnectClient as Client } from "../helpers/connect-client.js";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { dockerArchive, tarArchive } from "../helpers/tar-writer.js";
import { CHUNK, WINDOW } from "../../src/server/connect-flow.js";
import { EXEC_WINDOW } from "../../src/agent/exec.js";
import type { Daemon } from "../../src/server/daemon.js";
import { MAX_UPLOADS } from "../../src/server/connect.js";

/** The upgrade refused: its HTTP status and body. */
function refusal(url: string, headers: Record<string, string>, target = "/v1/connect"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws") + target, { headers });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once("open", () => reject(new Error("the upgrade was accepted")));
    ws.once("error", () => {});
  });
}

describe("/v1/connect", () => {
  let t: TestState;
  let d: Daemon;
  let key: string;
  let c: Client;
  let sandboxId: string;

  before(async () => {
    t = await freshState("connect");
    d = await testDaemon(t, { adminTenants: ["root"] });
    key = t.s.tenants.createKey("alice").key;
    c = await Client.open(d.url, key);
    c.send({ id: 1, op: "createSandbox", body: { template: "busybox" } });
    const created = await c.reply(1);
    assert.equal(created.status, 201, JSON.stringify(created));
    sandboxId = String(created.body?.["id"]);
  });
  after(async () => {
    c?.ws.close();
    await d?.close();
    await t?.close();
  });

  it("creates, gets and runs with the HTTP API's answers", async () => {
    c.send({ id: 2, op: "getSandbox", params: { id: sandboxId } });
    const got = await c.reply(2);
    assert.equal(got.status, 200);
    assert.equal(got.body?.["id"], sandboxId);
    assert.equal(got.body?.["status"], "running");
    c.send({ id: 3, op: "exec", params: { id: sandboxId }, body: { cmd: "echo out; echo err >&2; exit 4" } });
    await c.last(3);
    const ev = c.events(3);
    assert.equal(ev[0]?.type, "start");
    assert.ok((ev[0]?.pid ?? 0) > 0);
    assert.equal(c.output(3, "stdout"), "out\n");
    assert.equal(c.output(3, "stderr"), "err\n");
    assert.deepEqual(ev.at(-1), { type: "exit", exitCode: 4, signal: null, timedOut: false, oomKilled: false });
    // A background command's answer is its start, as over HTTP.
    c.send({ id: 4, op: "exec", params: { id: sandboxId }, body: { cmd: "true", background: true } });
    const bg = await c.reply(4);
    assert.equal(bg.status, 200);
    assert.equal(bg.body?.["type"], "start");
  });

  it("answers bad requests with the HTTP API's errors, and keeps the connection", async () => {
    c.send({ id: 10, op: "createSandbox", body: { template: "busybox", resources: { memory: "lots" } } });
    const spec = await c.reply(10);
    assert.equal(spec.status, 400);
    assert.equal(spec.body?.error?.code, "invalid_spec");
    assert.equal(spec.body?.error?.issues?.[0]?.path, "resources.memory");
    c.send({ id: 11, op: "exec", params: { id: "no-such-sandbox" }, body: { argv: ["true"] } });
    assert.equal((await c.reply(11)).body?.error?.code, "sandbox_not_found");
    c.send({ id: 12, op: "frobnicate" });
    const unknown = await c.reply(12);
    assert.equal(unknown.status, 400);
    assert.match(unknown.body?.error?.message ?? "", /unknown op "frobnicate"/);
    c.send("not json");
    const garbled = await c.until((m) => m.id === 0);
    assert.equal(garbled.status, 400);
    c.send({ id: 13, op: "exec", params: { id: sandboxId }, body: { argv: ["sleep", "5"] } });
    c.send({ id: 13, op: "getSandbox", params: { id: sandboxId } });
    const dup = await c.until((m) => m.id === 0 && /still being answered/.test(m.body?.error?.message ?? ""));
    assert.equal(dup.status, 400);
    c.send({ id: 14, op: "cancel", body: { request: 13 } });
    assert.equal((await c.reply(14)).status, 204);
    assert.equal((await c.last(13)).event?.signal, 9, "cancel kills the command");
    assert.equal(c.closed, undefined);
  });

  it("keeps tenants apart", async () => {
    const bob = await Client.open(d.url, t.s.tenants.createKey("bob").key);
    try {
      bob.send({ id: 1, op: "getSandbox", params: { id: sandboxId } });
      assert.equal((await bob.reply(1)).status, 404);
      bob.send({ id: 2, op: "exec", params: { id: sandboxId }, body: { argv: ["true"] } });
      assert.equal((await bob.reply(2)).status, 404);
    } finally {
      bob.ws.close();
    }
  });

  it("refuses an upgrade without a valid key, or somewhere else", async () => {
    const none = await refusal(d.url, {});
    assert.equal(none.status, 401);
    assert.match(none.body, /"code":"unauthorized"/);
    assert.equal((await refusal(d.url, { authorization: `Bearer crl_000000000000_${"A".repeat(43)}` })).status, 401);
    assert.equal((await refusal(d.url, { authorization: `Bearer ${key}` }, "/v1/elsewhere")).status, 404);
  });

  it("stops at a key revoked while connected, and closes", async () => {
    const k = t.s.tenants.createKey("alice");
    const carol = await Client.open(d.url, k.key);
    carol.send({ id: 1, op: "getSandbox", params: { id: sandboxId } });
    assert.equal((await carol.reply(1)).status, 200);
    d.sandboxes.tenants.revokeKey(k.id);
    carol.send({ id: 2, op: "getSandbox", params: { id: sandboxId } });
    assert.equal((await carol.reply(2)).status, 401);
    await carol.until(() => false, 5000).catch(() => {});
    assert.ok(carol.closed, "the daemon closes the connection");
  });

  it("kills the foreground commands of a connection that goes away", async () => {
    const dave = await Client.open(d.url, key);
    dave.send({ id: 1, op: "exec", params: { id: sandboxId }, body: { cmd: "exec sleep 47" } });
    await dave.until((m) => m.id === 1 && m.event?.type === "start");
    dave.ws.terminate();
    let left = "";
    for (let i = 0; i < 50; i++) {
      const id = 1000 + i;
      c.send({ id, op: "exec", params: { id: sandboxId }, body: { cmd: "ps -o args | grep -c '^sleep 47' || true" } });
      await c.last(id);
      left = Buffer.from(c.events(id).find((e) => e?.type === "stdout")?.data ?? "", "base64").toString().trim();
      if (left === "0") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(left, "0", "the command of the connection that left is gone");
  });

  it("closes a connection that sends a message over the body limit", async () => {
    const eve = await Client.open(d.url, key);
    eve.send({ id: 1, op: "createSandbox", body: { template: "busybox", labels: { big: "x".repeat(2 * 1024 * 1024) } } });
    await eve.until(() => false, 5000).catch(() => {});
    assert.equal(eve.closed?.code, 1009, "message too big");
  });

  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("writes and reads files as binary frames, and stats, lists, makes and removes them", async () => {
    const at = { id: sandboxId };
    const data = randomBytes(3 * WINDOW + 12345);
    c.send({ id: 100, op: "writeFile", params: at, query: { path: "/tmp/ch/blob", mode: "600" }, upload: true });
    await c.upload(100, data);
    const written = await c.reply(100);
    assert.equal(written.status, 200, JSON.stringify(written));
    assert.deepEqual(written.body, { path: "/tmp/ch/blob", size: data.length });
    assert.ok(c.messages.some((m) => m.credit === 100), "the daemon gave credit as it wrote");
    c.send({ id: 101, op: "readFile", params: at, query: { path: "/tmp/ch/blob" } });
    const back = await c.bytes(101);
    assert.ok(Buffer.isBuffer(back), JSON.stringify(back));
    assert.equal(sha(back), sha(data));
    assert.ok((c.frames.get(101) ?? []).every((f) => f.length <= CHUNK));
    c.send({ id: 102, op: "statFile", params: at, query: { path: "/tmp/ch/blob" } });
    const st = await c.reply(102);
    assert.deepEqual([st.status, st.body?.["size"], Number(st.body?.["mode"]) & 0o777], [200, data.length, 0o600]);
    c.send({ id: 103, op: "makeDir", params: at, body: { path: "/tmp/ch/sub/dir" } });
    assert.equal((await c.reply(103)).status, 204);
    c.send({ id: 104, op: "listFiles", params: at, query: { path: "/tmp/ch" } });
    assert.deepEqual(((await c.reply(104)).body?.["entries"] as { name: string }[]).map((e) => e.name), ["blob", "sub"]);
    c.send({ id: 105, op: "removeFile", params: at, query: { path: "/tmp/ch", recursive: true } });
    assert.equal((await c.reply(105)).status, 204);
    c.send({ id: 106, op: "readFile", params: at, query: { path: "/tmp/ch/blob" } });
    const gone = (await c.bytes(106)) as { status?: number; body?: { error?: { code: string } } };
    assert.deepEqual([gone.status, gone.body?.error?.code], [404, "sandbox_enoent"]);
    c.send({ id: 107, op: "readFile", params: at, query: { path: "etc/passwd" } });
    const relative = await c.reply(107);
    assert.equal(relative.status, 400);
    assert.match(relative.body?.error?.message ?? "", /^query parameter "path" must match pattern "\^\/", got "etc\/passwd"/);
    c.send({ id: 108, op: "writeFile", params: at, query: { path: "/tmp/json" }, body: { data: "x" } });
    assert.deepEqual([(await c.reply(108)).status, c.messages.find((m) => m.id === 108)?.body?.error?.code], [415, "unsupported_media_type"]);
  });

  it("moves a tree as tar in binary frames both ways: uploadArchive, downloadArchive", async () => {
    const at = { id: sandboxId };
    const blob = randomBytes(2 * WINDOW + 777);
    c.send({ id: 120, op: "uploadArchive", params: at, query: { path: "/tmp/tree" }, upload: true });
    await c.upload(120, tarArchive([{ name: "t/", type: "dir" }, { name: "t/blob", data: blob, mode: 0o640 }]));
    assert.equal((await c.reply(120)).status, 204);
    c.send({ id: 121, op: "statFile", params: at, query: { path: "/tmp/tree/t/blob" } });
    assert.equal(Number((await c.reply(121)).body?.["mode"]) & 0o777, 0o640);
    c.send({ id: 122, op: "downloadArchive", params: at, query: { path: "/tmp/tree/t" } });
    const back = await c.bytes(122);
    assert.ok(Buffer.isBuffer(back), JSON.stringify(back));
    assert.equal(back.subarray(0, 2).toString(), "t/", "members are named from the path's basename");
    assert.ok(back.includes(blob), "the file's bytes are in the archive");
    c.send({ id: 123, op: "downloadArchive", params: at, query: { path: "/tmp/none" } });
    const gone = (await c.bytes(123)) as { status?: number; body?: { error?: { code: string } } };
    assert.deepEqual([gone.status, gone.body?.error?.code], [404, "sandbox_enoent"]);
  });

  it("runs background commands and reaches them by pid: stdin as binary frames, signals, wait", async () => {
    const at = { id: sandboxId };
    c.send({ id: 200, op: "exec", params: at, body: { cmd: "cat > /tmp/fed; exit 5", background: true, stdin: true } });
    const started = await c.reply(200);
    assert.equal(started.body?.["type"], "start");
    const pid = Number(started.body?.["pid"]);
    c.send({ id: 201, op: "writeStdin", params: { ...at, pid }, upload: true });
    await c.upload(201, Buffer.from("through the channel"));
    assert.equal((await c.reply(201)).status, 204);
    c.send({ id: 202, op: "writeStdin", params: { ...at, pid }, query: { eof: true } });
    assert.equal((await c.reply(202)).status, 204);
    c.send({ id: 203, op: "waitProcess", params: { ...at, pid }, query: { timeoutMs: 10_000 } });
    const ended = await c.reply(203);
    assert.deepEqual([ended.status, ended.body?.["type"], ended.body?.["exitCode"]], [200, "exit", 5]);
    c.send({ id: 204, op: "readFile", params: at, query: { path: "/tmp/fed" } });
    assert.equal(String(await c.bytes(204)), "through the channel");

    c.send({ id: 205, op: "exec", params: at, body: { argv: ["sleep", "1000"], background: true } });
    const sleeper = Number((await c.reply(205)).body?.["pid"]);
    c.send({ id: 206, op: "waitProcess", params: { ...at, pid: sleeper }, query: { timeoutMs: 100 } });
    assert.deepEqual([(await c.reply(206)).status, c.messages.find((m) => m.id === 206)?.body?.["type"]], [202, "start"]);
    c.send({ id: 207, op: "signalProcess", params: { ...at, pid: sleeper }, body: { signal: 15 } });
    assert.equal((await c.reply(207)).status, 204);
    c.send({ id: 208, op: "waitProcess", params: { ...at, pid: sleeper } });
    const killed = await c.reply(208);
    assert.deepEqual([killed.status, killed.body?.["signal"]], [200, 15]);
    c.send({ id: 209, op: "signalProcess", params: { ...at, pid: sleeper }, body: { signal: 15 } });
    assert.equal((await c.reply(209)).body?.error?.code, "process_not_found");
  });

  it("lists, builds and imports templates, imports and removals for admin tenants only", async () => {
    c.send({ id: 300, op: "listTemplates" });
    const list = (await c.reply(300)).body?.["templates"] as { name: string; built: boolean }[];
    assert.ok(list.some((x) => x.name === "busybox" && x.built), JSON.stringify(list));
    c.send({ id: 301, op: "buildTemplate", params: { name: "busybox" } });
    const built = await c.last(301);
    assert.equal(built.event?.type, "done", JSON.stringify(built));
    assert.equal((built.event?.["template"] as { name: string }).name, "busybox");

    const archive = dockerArchive([tarArchive([{ name: "etc/", type: "dir" }, { name: "etc/over-channel", data: "imported\n" }])]);
    c.send({ id: 302, op: "importTemplate", params: { name: "ch-import" }, upload: true });
    await c.upload(302, archive);
    const refused = await c.reply(302);
    assert.deepEqual([refused.status, refused.body?.error?.code], [403, "forbidden"]);
    c.send({ id: 303, op: "deleteTemplate", params: { name: "busybox" } });
    assert.equal((await c.reply(303)).status, 403);

    const root = await Client.open(d.url, t.s.tenants.createKey("root").key);
    try {
      root.send({ id: 1, op: "importTemplate", params: { name: "ch-import" }, upload: true });
      await root.upload(1, archive, 1000);
      const done = await root.last(1);
      assert.equal(done.event?.type, "done", JSON.stringify(root.events(1)));
      assert.ok(root.events(1).some((e) => e.type === "progress" && e["phase"] === "layer"));
      assert.equal((await t.s.store.template("ch-import"))?.layers.length, 1);
      root.send({ id: 2, op: "deleteTemplate", params: { name: "ch-import" } });
      assert.equal((await root.reply(2)).status, 204);
      assert.equal(await t.s.store.template("ch-import"), undefined);
    } finally {
      root.ws.close();
    }
  });

  it("pauses a command whose reader gives no credit, and lets it finish once credit comes", async () => {
    const slow = await Client.open(d.url, key);
    slow.autoCredit = false;
    try {
      // A sandbox of its own, so the touch below is this command's alone.
      slow.send({ id: 1, op: "createSandbox", body: { template: "busybox" } });
      const sb = String((await slow.reply(1)).body?.["id"]);
      const total = 16 * WINDOW;
      slow.send({ id: 2, op: "exec", params: { id: sb }, body: { cmd: `head -c ${total} /dev/zero; touch /tmp/flow-done` } });
      await slow.until((m) => m.id === 2 && m.event?.type === "start");
      let before = -1;
      while ((slow.total.get(2) ?? 0) !== before) {
        before = slow.total.get(2) ?? 0;
        await sleep(500);
      }
      // A window, plus what the command's agent window let through after
      // the pause (EXEC_WINDOW of output, base64 in events of ≤ CHUNK).
      const event = Math.ceil(CHUNK / 3) * 4 + 200;
      const execWindow = Math.ceil(EXEC_WINDOW / 3) * 4 + Math.ceil(EXEC_WINDOW / CHUNK) * 200;
      assert.ok(before <= WINDOW + execWindow + 2 * event, `${before} bytes came without credit`);
      assert.ok(before >= WINDOW / 2, `only ${before} bytes came`);
      c.send({ id: 600, op: "statFile", params: { id: sb }, query: { path: "/tmp/flow-done" } });
      assert.equal((await c.reply(600)).status, 404, "the command went on without a reader");
      slow.autoCredit = true;
      slow.credit(2);
      const exit = await slow.last(2, 120_000);
      assert.equal(exit.event?.exitCode, 0);
      assert.equal(Buffer.from(slow.output(2, "stdout"), "latin1").length, total);
      c.send({ id: 601, op: "statFile", params: { id: sb }, query: { path: "/tmp/flow-done" } });
      assert.equal((await c.reply(601)).status, 200);
      slow.send({ id: 3, op: "deleteSandbox", params: { id: sb } });
      assert.equal((await slow.reply(3)).status, 204);
    } finally {
      slow.ws.close();
    }
  });

  it("takes a bounded number of uploads at once, and gives one up on cancel", async () => {
    const ids = Array.from({ length: MAX_UPLOADS }, (_, i) => 700 + i);
    for (const id of ids) c.send({ id, op: "writeFile", params: { id: sandboxId }, query: { path: `/tmp/up-${id}` }, upload: true });
    c.send({ id: 799, op: "writeFile", params: { id: sandboxId }, query: { path: "/tmp/up-over" }, upload: true });
    const over = await c.reply(799);
    assert.deepEqual([over.status, over.body?.error?.code], [429, "too_many_requests"]);
    for (const [i, id] of ids.entries()) c.send({ id: 800 + i, op: "cancel", body: { request: id } });
    for (const [i, id] of ids.entries()) {
      assert.equal((await c.reply(800 + i)).status, 204);
      assert.ok((await c.reply(id)).status! >= 400, "a cancelled upload is answered with an error");
    }
  });

  it("gives a bad spec the same error through HTTP, the channel and the library", async () => {
    const bad = { template: "busybox", resources: { memory: "lots", pids: 1 }, lifetime: { mode: "forever" }, extra: true };
    const overHttp = await request(d.url, "POST", "/v1/sandboxes", { key, json: bad });
    c.send({ id: 400, op: "createSandbox", body: bad });
    const overChannel = await c.reply(400);
    const lib = (await t.s.create(bad).catch((e: unknown) => e)) as { code: string; message: string; issues: { path: string; message: string }[] };
    assert.equal(overHttp.status, 400);
    assert.equal(overChannel.status, 400);
    const error = overHttp.json<{ error: unknown }>().error;
    assert.deepEqual(overChannel.body?.error, error);
    assert.deepEqual(error, { code: lib.code, message: lib.message, issues: lib.issues });
    assert.equal(lib.code, "invalid_spec");
    assert.deepEqual(lib.issues.map((i) => i.path).sort(), ["", "lifetime.mode", "resources.memory", "resources.pids"]);
  });

  it("answers a first user's mistakes with what was meant", async () => {
    const post = (body: string, type: string) => request(d.url, "POST", "/v1/sandboxes", { key, body, headers: { "content-type": type } });
    const plain = await post('{"template":"busybox"}', "text/plain");
    assert.equal(plain.status, 415, plain.text);
    assert.deepEqual(plain.json(), { error: { code: "unsupported_media_type", message: "createSandbox takes application/json, not text/plain" } });
    assert.match((await post("template=busybox", "application/x-www-form-urlencoded")).text, /curl -d sends a form: add -H 'content-type: application\/json'/);
    const empty = await request(d.url, "POST", "/v1/sandboxes", { key });
    assert.equal(empty.status, 400);
    assert.match(empty.text, /createSandbox needs a body \(content-type: application\/json\)/);
    c.send({ id: 500, op: "createSandbox", upload: true });
    assert.equal((await c.reply(500)).status, 415);

    // {"command": ...} on exec points to cmd and argv, on both transports.
    const command = await request(d.url, "POST", `/v1/sandboxes/${sandboxId}/exec`, { key, json: { command: "ls" } });
    assert.equal(command.status, 400);
    assert.match(command.text, /unknown field \\"command\\": did you mean \\"cmd\\"\?.*`argv` \(the program and its arguments\)/);
    c.send({ id: 501, op: "exec", params: { id: sandboxId }, body: { command: "ls" } });
    assert.deepEqual((await c.reply(501)).body, command.json());
    const neither = await request(d.url, "POST", `/v1/sandboxes/${sandboxId}/exec`, { key, json: { env: { A: "b" } } });
    assert.match(neither.text, /exec needs \\"argv\\" \(the program and its arguments.*or \\"cmd\\"/);

    // An id that is not there is called an id, not a name.
    const missing = await request(d.url, "GET", "/v1/sandboxes/0123456789abcdef", { key });
    assert.equal(missing.json<{ error: { message: string } }>().error.message, 'no sandbox with id "0123456789abcdef"');
    assert.equal((await request(d.url, "GET", "/v1/sandboxes/nosuch", { key })).json<{ error: { message: string } }>().error.message, 'no sandbox named "nosuch"');
  });

  it("lets an SDK process that used it exit by itself", async () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const sdk = path.resolve(here, "../../sdk/src/index.js");
    const script = `import { Sandbox } from ${JSON.stringify(sdk)};
      const sb = await Sandbox.connect(${JSON.stringify(sandboxId)}, { apiUrl: ${JSON.stringify(d.url)}, apiKey: ${JSON.stringify(key)} });
      const r = await sb.commands.run("echo done");
      process.stdout.write(r.stdout);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve(-1);
      }, 10_000);
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(out, "done\n");
    assert.equal(code, 0, "the process ended on its own, its WebSocket idle");
  });
});
