// /v1/connect spoken directly (the `ws` client, no SDK) to a real daemon:
// its answers, its errors, and what a connection that goes away takes with it.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { freshState, type TestState } from "../helpers/state.js";
import { testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";

interface Reply {
  id: number;
  status?: number;
  body?: { error?: { code: string; message: string; issues?: { path: string }[] } } & Record<string, unknown>;
  event?: { type: string; pid?: number; data?: string; exitCode?: number | null; signal?: number | null };
}

/** A test client: sends requests, collects what comes back by id. */
class Client {
  readonly messages: Reply[] = [];
  private waiters: (() => void)[] = [];
  closed: { code: number } | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (d) => {
      this.messages.push(JSON.parse(String(d)) as Reply);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on("close", (code) => {
      this.closed = { code };
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(url: string, key: string): Promise<Client> {
    const ws = new WebSocket(url.replace(/^http/, "ws") + "/v1/connect", { headers: { authorization: `Bearer ${key}` } });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    return new Client(ws);
  }

  send(m: unknown): void {
    this.ws.send(typeof m === "string" ? m : JSON.stringify(m));
  }

  /** Waits for a message matching `pred` (or the close, with `closed`). */
  async until(pred: (m: Reply) => boolean, timeoutMs = 15_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.messages.find(pred);
      if (m) return m;
      if (this.closed) throw new Error(`closed (${this.closed.code}) before the message came`);
      if (Date.now() > deadline) throw new Error(`no such message within ${timeoutMs} ms: ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  reply(id: number): Promise<Reply> {
    return this.until((m) => m.id === id && m.status !== undefined);
  }

  exit(id: number): Promise<Reply> {
    return this.until((m) => m.id === id && (m.event?.type === "exit" || m.event?.type === "error"));
  }

  events(id: number): Reply["event"][] {
    return this.messages.filter((m) => m.id === id && m.event).map((m) => m.event);
  }
}

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
    d = await testDaemon(t);
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
    await c.exit(3);
    const ev = c.events(3);
    assert.equal(ev[0]?.type, "start");
    assert.ok((ev[0]?.pid ?? 0) > 0);
    const text = (type: string) => Buffer.concat(ev.filter((e) => e?.type === type).map((e) => Buffer.from(e?.data ?? "", "base64"))).toString();
    assert.equal(text("stdout"), "out\n");
    assert.equal(text("stderr"), "err\n");
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
    assert.equal((await c.exit(13)).event?.signal, 9, "cancel kills the command");
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
      await c.exit(id);
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
