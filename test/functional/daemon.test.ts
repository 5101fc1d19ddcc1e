// corrald on a unix socket, the memory quota, and a graceful stop that
// leaves sandboxes running.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import path from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { ConnectClient } from "../helpers/connect-client.js";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { Sandbox } from "../../sdk/src/index.js";

function overSocket(socketPath: string, method: string, p: string, key: string, json?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, method, path: p, headers: { authorization: `Bearer ${key}`, ...(json ? { "content-type": "application/json" } : {}) } },
      (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end(json ? JSON.stringify(json) : undefined);
  });
}

describe("corrald", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("daemon");
  });
  after(async () => t.close());

  it("serves a unix socket, enforces the memory quota, and stops leaving sandboxes running", async () => {
    const socket = path.join(path.dirname(t.stateDir), "corrald.sock");
    const d = await testDaemon(t, { listen: { socket } });
    const key = d.sandboxes.tenants.createKey("quota").key;
    d.sandboxes.tenants.setQuota("quota", { maxMemory: 600 * 1024 * 1024 });
    const first = await overSocket(socket, "POST", "/v1/sandboxes", key, { template: "busybox", name: "q1", resources: { memory: "512M" } });
    assert.equal(first.status, 201, first.body);
    const second = await overSocket(socket, "POST", "/v1/sandboxes", key, { template: "busybox", resources: { memory: "512M" } });
    assert.equal(second.status, 429);
    const err = JSON.parse(second.body) as { error: { code: string; over: { quota: string; limit: number; requested: number } } };
    assert.equal(err.error.code, "quota_exceeded");
    assert.deepEqual(err.error.over, { quota: "memory", limit: 600 * 1024 * 1024, requested: 1024 * 1024 * 1024 });
    // A graceful stop: the sandbox outlives the daemon.
    await d.close();
    assert.equal((await t.s.exec("q1", { cmd: "true" })).exitCode, 0);
  });

  it("exports Prometheus metrics", async () => {
    const d = await testDaemon(t, { publicMetrics: true });
    try {
      const key = d.sandboxes.tenants.createKey("metrics").key;
      const created = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", name: "m1" } });
      assert.equal(created.status, 201, created.text);
      await request(d.url, "GET", "/v1/sandboxes/nosuch", { key });
      // exec streams its answer on the raw socket; its request is counted all the same.
      const ran = await request(d.url, "POST", "/v1/sandboxes/m1/exec", { key, json: { argv: ["/bin/true"] } });
      assert.equal(ran.status, 200);
      assert.match(ran.text, /"type":"exit","exitCode":0/);
      const m = await request(d.url, "GET", "/metrics");
      assert.equal(m.status, 200);
      assert.match(String(m.headers["content-type"]), /^text\/plain/);
      assert.match(m.text, /^corral_http_requests_total\{operation="createSandbox",status="201"\} 1$/m);
      assert.match(m.text, /^corral_http_requests_total\{operation="getSandbox",status="404"\} 1$/m);
      assert.match(m.text, /^corral_http_requests_total\{operation="exec",status="200"\} 1$/m);
      assert.match(m.text, /^corral_sandboxes\{tenant="metrics",state="running"\} 1$/m);
      assert.match(m.text, /^corral_http_request_duration_seconds_bucket\{le="0.1",operation="createSandbox"\} \d+$/m);
      await request(d.url, "DELETE", "/v1/sandboxes/m1", { key });
    } finally {
      await d.close();
    }
  });

  it("logs every request once at info, on both transports, with its operation, status, time, tenant and sandbox", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const d = await testDaemon(t, { logger: pino({ level: "info" }, sink) });
    const c = await ConnectClient.open(d.url, d.sandboxes.tenants.createKey("logged").key);
    try {
      const key = d.sandboxes.tenants.createKey("logged").key;
      const created = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", name: "l1" } });
      const id = created.json<{ id: string }>().id;
      await request(d.url, "GET", "/v1/sandboxes/l1", { key });
      await request(d.url, "GET", "/v1/sandboxes/nosuch", { key });
      c.send({ id: 1, op: "exec", params: { id: "l1" }, body: { cmd: "true" } });
      await c.last(1);
      c.send({ id: 2, op: "getSandbox", params: { id } });
      await c.reply(2);
      await request(d.url, "DELETE", `/v1/sandboxes/${id}`, { key });
      await new Promise((r) => setImmediate(r));
      const requests = lines.filter((l) => l["msg"] === "request").map(({ transport, method, operation, status, tenant, sandbox, level, ms }) => ({
        transport, method, operation, status, tenant, sandbox, level, timed: typeof ms === "number",
      }));
      const line = (transport: string, method: string, operation: string, status: number, sandbox?: string) => ({
        transport, method, operation, status, tenant: "logged", sandbox, level: 30, timed: true,
      });
      assert.deepEqual(requests, [
        line("http", "POST", "createSandbox", 201, id),
        line("http", "GET", "getSandbox", 200, id),
        line("http", "GET", "getSandbox", 404, "nosuch"),
        line("connect", "POST", "exec", 200, id),
        line("connect", "GET", "getSandbox", 200, id),
        line("http", "DELETE", "deleteSandbox", 204, id),
      ]);
    } finally {
      c.ws.close();
      await d.close();
    }
  });

  it("answers the SDK on a unix socket, and kills a command whose HTTP client left, over a connection other commands share", async () => {
    const socket = path.join(path.dirname(t.stateDir), "sdk.sock");
    const d = await testDaemon(t, { listen: { socket } });
    try {
      const key = d.sandboxes.tenants.createKey("uds").key;
      const sb = await Sandbox.create({ apiUrl: `unix:${socket}`, apiKey: key, template: "busybox" });
      assert.equal((await sb.commands.run("echo hi")).stdout, "hi\n");
      // A foreground command, its client gone mid-stream.
      const req = http.request({ socketPath: socket, method: "POST", path: `/v1/sandboxes/${sb.sandboxId}/exec`, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" } });
      req.on("error", () => {});
      req.end(JSON.stringify({ cmd: "touch /tmp/started; exec sleep 30" }));
      for (let i = 0; i < 200 && !(await sb.files.exists("/tmp/started")); i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(await sb.files.exists("/tmp/started"), true);
      const running = async () => (await sb.commands.run("ps -o comm | grep -c '^sleep$'")).stdout.trim();
      assert.equal(await running(), "1");
      req.destroy();
      let left = "1";
      for (let i = 0; i < 100 && left !== "0"; i++) {
        await new Promise((r) => setTimeout(r, 50));
        left = await running();
      }
      assert.equal(left, "0", "the command outlived its HTTP client");
      // Commands sharing the daemon's agent connection carry on.
      assert.equal((await sb.commands.run(["/bin/true"])).exitCode, 0);
      await sb.kill();
    } finally {
      await d.close();
    }
  });
});
