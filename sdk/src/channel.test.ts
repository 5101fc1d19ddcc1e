// The SDK over /v1/connect, against a scripted daemon: a WebSocket server
// that answers as corrald does, so every message the SDK sends is seen.
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { AuthError, InvalidArgumentError, NotFoundError, Sandbox, SandboxError, TimeoutError } from "./index.js";
import { connectUrl, WINDOW } from "./channel.js";

interface Msg {
  id: number;
  op: string;
  params?: Record<string, string>;
  body?: Record<string, unknown>;
}
type Script = (m: Msg, ws: WebSocket) => void;

const sandbox = (id: string) => ({
  id,
  name: `sb-${id.slice(0, 8)}`,
  template: "busybox",
  backend: "container",
  status: "running",
  createdAt: "2026-01-01T00:00:00.000Z",
  expiresAt: null,
  spec: { template: "busybox", backend: "container", labels: {}, env: {}, resources: {}, lifetime: { mode: "ephemeral" } },
});

describe("Sandbox over /v1/connect (scripted daemon)", () => {
  let server: http.Server;
  let apiUrl: string;
  let seen: Msg[];
  let upgrades: { auth: string | undefined; url: string | undefined }[];
  let httpRequests: string[];
  let script: Script;
  let sockets: WebSocket[];
  const opts = () => ({ apiUrl, apiKey: "crl_ws" });
  const send = (ws: WebSocket, m: unknown) => ws.send(JSON.stringify(m));

  before(async () => {
    server = http.createServer((req, res) => {
      httpRequests.push(`${req.method} ${req.url}`);
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "unexpected", message: "this test wants the WebSocket" } }));
    });
    const wss = new WebSocketServer({ noServer: true });
    server.on("upgrade", (req, socket, head) => {
      upgrades.push({ auth: req.headers.authorization, url: req.url });
      if (req.headers.authorization !== "Bearer crl_ws") {
        socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"error":{"code":"unauthorized","message":"no such key"}}');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        sockets.push(ws);
        ws.on("message", (data) => {
          const m = JSON.parse(String(data)) as Msg;
          seen.push(m);
          script(m, ws);
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const s of sockets) s.terminate();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  beforeEach(() => {
    seen = [];
    upgrades = [];
    httpRequests = [];
    sockets ??= [];
    script = (m, ws) => send(ws, { id: m.id, status: 500, body: { error: { code: "unexpected", message: `no script for ${m.op}` } } });
  });

  it("creates, runs and kills over one connection, with the key at the upgrade, and no HTTP request", async () => {
    script = (m, ws) => {
      if (m.op === "createSandbox") return send(ws, { id: m.id, status: 201, body: sandbox("0123456789abcdef") });
      if (m.op === "exec") {
        send(ws, { id: m.id, event: { type: "start", pid: 7 } });
        send(ws, { id: m.id, event: { type: "stdout", data: Buffer.from("hé").toString("base64") } });
        send(ws, { id: m.id, event: { type: "stderr", data: Buffer.from("oops\n").toString("base64") } });
        return send(ws, { id: m.id, event: { type: "exit", exitCode: 3, signal: null, timedOut: false, oomKilled: false } });
      }
      if (m.op === "deleteSandbox") return send(ws, { id: m.id, status: 204 });
    };
    const sb = await Sandbox.create({ ...opts(), resources: { memory: "256M" } });
    const out: string[] = [];
    const r = await sb.commands.run(["sh", "-c", "x"], { onStdout: (t) => void out.push(t), envs: { A: "1" } });
    assert.deepEqual(r, { exitCode: 3, stdout: "hé", stderr: "oops\n", signal: null, timedOut: false, oomKilled: false });
    assert.deepEqual(out, ["hé"]);
    assert.equal(await sb.kill(), true);
    assert.deepEqual(
      seen.map((m) => [m.op, m.params, m.body]),
      [
        ["createSandbox", undefined, { template: "busybox", resources: { memory: "256M" } }],
        ["exec", { id: "0123456789abcdef" }, { argv: ["sh", "-c", "x"], env: { A: "1" } }],
        ["deleteSandbox", { id: "0123456789abcdef" }, undefined],
      ],
    );
    assert.equal(new Set(seen.map((m) => m.id)).size, 3, "every request has its own id");
    assert.ok(upgrades.length <= 1 && upgrades.every((u) => u.auth === "Bearer crl_ws" && u.url === "/v1/connect"), JSON.stringify(upgrades));
    assert.deepEqual(httpRequests, []);
  });

  it("maps error answers to the same errors as HTTP", async () => {
    script = (m, ws) => {
      if (m.op === "createSandbox") {
        return send(ws, { id: m.id, status: 400, body: { error: { code: "invalid_spec", message: "bad", issues: [{ path: "resources.memory", message: "too big" }] } } });
      }
      if (m.op === "deleteSandbox") return send(ws, { id: m.id, status: 404, body: { error: { code: "sandbox_not_found", message: "gone" } } });
      if (m.op === "exec") return send(ws, { id: m.id, status: 404, body: { error: { code: "sandbox_not_found", message: "no such sandbox" } } });
      if (m.op === "getSandbox") return send(ws, { id: m.id, status: 200, body: sandbox("fedcba9876543210") });
    };
    await assert.rejects(Sandbox.create(opts()), (e: unknown) => e instanceof InvalidArgumentError && e.issues[0]?.path === "resources.memory" && e.status === 400);
    assert.equal(await Sandbox.kill("nope", opts()), false);
    const sb = await Sandbox.connect("fedcba9876543210", opts());
    await assert.rejects(sb.commands.run("true"), (e: unknown) => e instanceof NotFoundError && e.code === "sandbox_not_found");
  });

  it("awaits an output callback before the next event", async () => {
    script = (m, ws) => {
      if (m.op === "getSandbox") return send(ws, { id: m.id, status: 200, body: sandbox("0123456789abcdef") });
      send(ws, { id: m.id, event: { type: "start", pid: 7 } });
      for (const t of ["a", "b"]) send(ws, { id: m.id, event: { type: "stdout", data: Buffer.from(t).toString("base64") } });
      send(ws, { id: m.id, event: { type: "exit", exitCode: 0, signal: null, timedOut: false, oomKilled: false } });
    };
    const sb = await Sandbox.connect("0123456789abcdef", opts());
    const order: string[] = [];
    const r = await sb.commands.run("x", {
      onStdout: async (t) => {
        order.push(`start ${t}`);
        await new Promise((res) => setTimeout(res, 20));
        order.push(`end ${t}`);
      },
    });
    assert.equal(r.stdout, "ab");
    assert.deepEqual(order, ["start a", "end a", "start b", "end b"]);
  });

  it("gives credit for the events it has consumed, not for those still waiting on the callback", async () => {
    const chunk = Buffer.alloc(48 * 1024, 0x61).toString("base64");
    const chunks = Math.ceil(WINDOW / chunk.length);
    let execId = 0;
    script = (m, ws) => {
      if (m.op === "getSandbox") return send(ws, { id: m.id, status: 200, body: sandbox("0123456789abcdef") });
      if (m.op !== "exec") return; // credit
      execId = m.id;
      send(ws, { id: m.id, event: { type: "start", pid: 7 } });
      for (let i = 0; i < chunks; i++) send(ws, { id: m.id, event: { type: "stdout", data: chunk } });
      send(ws, { id: m.id, event: { type: "exit", exitCode: 0, signal: null, timedOut: false, oomKilled: false } });
    };
    const sb = await Sandbox.connect("0123456789abcdef", opts());
    let handled = 0;
    let creditedWhenHalfDone = 0;
    const credited = () => seen.filter((m) => (m as { credit?: number }).credit === execId).reduce((a, m) => a + ((m as { bytes?: number }).bytes ?? 0), 0);
    const r = await sb.commands.run("x", {
      onStdout: async () => {
        if (++handled === Math.floor(chunks / 2)) creditedWhenHalfDone = credited();
        await new Promise((res) => setImmediate(res));
      },
    });
    assert.equal(r.stdout.length, chunks * 48 * 1024);
    await new Promise((res) => setTimeout(res, 50));
    assert.ok(creditedWhenHalfDone > 0 && creditedWhenHalfDone <= (WINDOW * 3) / 4, `${creditedWhenHalfDone}`);
    assert.ok(credited() >= WINDOW - WINDOW / 4, `${credited()}`);
  });

  it("gives TimeoutError when no answer comes in requestTimeoutMs, and cancels a command that never started", async () => {
    script = () => {}; // never answers
    await assert.rejects(Sandbox.getInfo("0123456789abcdef", { ...opts(), requestTimeoutMs: 100 }), (e: unknown) => e instanceof TimeoutError);
    script = (m, ws) => {
      if (m.op === "getSandbox") send(ws, { id: m.id, status: 200, body: sandbox("0123456789abcdef") });
    };
    const sb = await Sandbox.connect("0123456789abcdef", { ...opts(), requestTimeoutMs: 100 });
    seen = [];
    await assert.rejects(sb.commands.run("sleep 9"), (e: unknown) => e instanceof TimeoutError);
    await new Promise((r) => setTimeout(r, 50));
    const exec = seen.find((m) => m.op === "exec");
    assert.ok(exec);
    assert.deepEqual(seen.find((m) => m.op === "cancel")?.body, { request: exec.id });
  });

  it("fails what is in flight with connection_failed when the connection drops, then connects again", async () => {
    script = (m, ws) => {
      if (m.op === "exec") return ws.terminate();
      send(ws, { id: m.id, status: 200, body: sandbox("0123456789abcdef") });
    };
    const sb = await Sandbox.connect("0123456789abcdef", opts());
    await assert.rejects(sb.commands.run("x"), (e: unknown) => e instanceof SandboxError && e.code === "connection_failed");
    assert.equal((await sb.info()).sandboxId, "0123456789abcdef");
  });

  it("says AuthError for a key the daemon refuses at the upgrade", async () => {
    await assert.rejects(Sandbox.getInfo("0123456789abcdef", { apiUrl, apiKey: "crl_other" }), (e: unknown) => e instanceof AuthError && e.status === 401);
  });

  it("builds the WebSocket URL of every kind of apiUrl", () => {
    assert.equal(connectUrl("http://127.0.0.1:7070"), "ws://127.0.0.1:7070/v1/connect");
    assert.equal(connectUrl("https://corral.example/api/"), "wss://corral.example/api/v1/connect");
    assert.equal(connectUrl("unix:/run/corral.sock"), "ws+unix:/run/corral.sock:/v1/connect");
  });
});

describe("Sandbox against a daemon without /v1/connect", () => {
  it("asks for the WebSocket once, then speaks HTTP", async () => {
    const requests: string[] = [];
    const server = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.url === "/v1/connect") {
        res.writeHead(404, { "content-type": "application/json" });
        return res.end('{"error":{"code":"route_not_found","message":"no"}}');
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(sandbox("0123456789abcdef")));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const o = { apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, apiKey: "crl_x" };
      await Sandbox.getInfo("0123456789abcdef", o);
      await Sandbox.getInfo("0123456789abcdef", o);
      assert.deepEqual(requests, ["GET /v1/connect", "GET /v1/sandboxes/0123456789abcdef", "GET /v1/sandboxes/0123456789abcdef"]);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
