// The SDK against a scripted in-process HTTP server: what it sends, how it
// reads streams, how it fails. The real daemon is driven in
// test/functional/sdk.test.ts.
import { describe, it, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { AuthError, InvalidArgumentError, NotFoundError, Sandbox, SandboxError, TimeoutError } from "./index.js";

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  contentType: string | undefined;
  body: Buffer;
}
type Handler = (req: Seen, res: http.ServerResponse) => void | Promise<void>;

const SB = {
  id: "0123456789abcdef",
  name: "sb",
  template: "busybox",
  backend: "container",
  status: "running",
  createdAt: "2024-01-01T00:00:00.000Z",
  expiresAt: "2024-01-01T00:05:00.000Z",
  spec: {
    template: "busybox",
    backend: "container",
    resources: { vcpus: 1, memory: 536870912, pids: 1024, disk: 1073741824 },
    env: {},
    workdir: "/",
    network: "none",
    lifetime: { mode: "ephemeral", timeoutSeconds: 300 },
    labels: { team: "a" },
  },
};

describe("Sandbox against a scripted server", () => {
  let server: http.Server;
  let apiUrl: string;
  let seen: Seen[];
  let handler: Handler;
  // HTTP only: these check how each call maps onto the HTTP API (channel.test.ts covers /v1/connect).
  const opts = () => ({ apiUrl, apiKey: "crl_test", transport: "http" as const });
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

  before(async () => {
    server = http.createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const s: Seen = {
        method: req.method ?? "",
        url: req.url ?? "",
        auth: req.headers.authorization,
        contentType: req.headers["content-type"],
        body: Buffer.concat(chunks),
      };
      seen.push(s);
      await handler(s, res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  beforeEach(() => {
    seen = [];
    handler = (_, res) => json(res, 500, { error: { code: "unexpected", message: "no handler" } });
  });

  it("creates with the spec mapped from E2B-style options, and the key as a bearer token", async () => {
    handler = (_, res) => json(res, 201, SB);
    const sb = await Sandbox.create({ ...opts(), timeoutMs: 1500, envs: { A: "1" }, metadata: { team: "a" }, resources: { memory: "256M" } });
    assert.equal(sb.sandboxId, SB.id);
    const [req] = seen;
    assert.equal(req?.method, "POST");
    assert.equal(req?.url, "/v1/sandboxes");
    assert.equal(req?.auth, "Bearer crl_test");
    assert.equal(req?.contentType, "application/json");
    assert.deepEqual(JSON.parse(req?.body.toString() ?? ""), {
      template: "busybox",
      resources: { memory: "256M" },
      env: { A: "1" },
      labels: { team: "a" },
      lifetime: { timeoutSeconds: 2 },
    });
    await Sandbox.create({ ...opts(), template: "debian", persistent: true, name: "pet" });
    assert.deepEqual(JSON.parse(seen[1]?.body.toString() ?? ""), { template: "debian", name: "pet", lifetime: { mode: "persistent" } });
  });

  it("fails with AuthError before any request when there is no key", async () => {
    const saved = process.env["CORRAL_API_KEY"];
    delete process.env["CORRAL_API_KEY"];
    try {
      await assert.rejects(Sandbox.create({ apiUrl }), AuthError);
      await assert.rejects(Sandbox.list({ apiUrl }), AuthError);
      assert.equal(seen.length, 0);
    } finally {
      if (saved !== undefined) process.env["CORRAL_API_KEY"] = saved;
    }
  });

  it("lists by labels, one label parameter each", async () => {
    handler = (_, res) => json(res, 200, { sandboxes: [SB] });
    const list = await Sandbox.list({ ...opts(), metadata: { team: "a", "x y": "1=2" } });
    assert.equal(seen[0]?.url, "/v1/sandboxes?label=team%3Da&label=x+y%3D1%3D2");
    assert.equal(list[0]?.sandboxId, SB.id);
    assert.deepEqual(list[0]?.metadata, { team: "a" });
  });

  it("maps error responses to classes, and kill of a missing sandbox to false", async () => {
    handler = (_, res) => json(res, 404, { error: { code: "sandbox_not_found", message: 'no sandbox named "nope"' } });
    await assert.rejects(Sandbox.connect("nope", opts()), (e: unknown) => e instanceof NotFoundError && e.code === "sandbox_not_found" && e.status === 404);
    assert.equal(await Sandbox.kill("nope", opts()), false);
    handler = (_, res) =>
      json(res, 400, { error: { code: "invalid_spec", message: "invalid sandbox spec", issues: [{ path: "resources.memory", message: "bad size" }] } });
    await assert.rejects(Sandbox.create({ ...opts(), resources: { memory: "lots" } }), (e: unknown) => e instanceof InvalidArgumentError && /resources\.memory/.test(e.message));
  });

  it("streams command output to the callbacks while the command runs", async () => {
    handler = (_, res) => json(res, 200, SB);
    const sb = await Sandbox.connect(SB.id, opts());
    let firstSeen!: () => void;
    const first = new Promise<void>((r) => (firstSeen = r));
    const euro = Buffer.from("€");
    handler = async (_, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      const ev = (e: object) => res.write(`${JSON.stringify(e)}\n`);
      ev({ type: "start", pid: 7 });
      ev({ type: "stdout", data: Buffer.concat([Buffer.from("first "), euro.subarray(0, 1)]).toString("base64") });
      await first; // the exit is only sent once the client has seen the first output
      ev({ type: "stdout", data: Buffer.concat([euro.subarray(1), Buffer.from("\n")]).toString("base64") });
      ev({ type: "stderr", data: Buffer.from("oops\n").toString("base64") });
      res.end(JSON.stringify({ type: "exit", exitCode: 3, signal: null, timedOut: false, oomKilled: false }));
    };
    const outs: string[] = [];
    const r = await sb.commands.run(["/bin/x", "y"], {
      envs: { K: "v" },
      cwd: "/tmp",
      stdin: "in",
      timeoutMs: 1000,
      onStdout: (d) => {
        outs.push(d);
        firstSeen();
      },
    });
    assert.deepEqual(outs, ["first ", "€\n"]);
    assert.deepEqual(r, { exitCode: 3, stdout: "first €\n", stderr: "oops\n", signal: null, timedOut: false, oomKilled: false });
    assert.deepEqual(JSON.parse(seen[1]?.body.toString() ?? ""), {
      argv: ["/bin/x", "y"],
      cwd: "/tmp",
      env: { K: "v" },
      timeoutMs: 1000,
      stdin: Buffer.from("in").toString("base64"),
    });
    assert.equal(seen[1]?.url, `/v1/sandboxes/${SB.id}/exec`);
  });

  it("keeps one connection for many calls, commands included (it reads each answer to its end)", async () => {
    // Start from no open connection (earlier tests left one idle in the SDK's pool).
    server.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 50));
    let connections = 0;
    const count = () => connections++;
    server.on("connection", count);
    try {
      handler = (s, res) => {
        if (s.url.endsWith("/exec")) {
          res.writeHead(200, { "content-type": "application/x-ndjson" });
          res.write(`${JSON.stringify({ type: "start", pid: 1 })}\n`);
          res.end(`${JSON.stringify({ type: "exit", exitCode: 0 })}\n`);
        } else json(res, 200, SB);
      };
      const sb = await Sandbox.connect(SB.id, opts());
      for (let i = 0; i < 3; i++) assert.equal((await sb.commands.run("true")).exitCode, 0);
      await sb.info();
      assert.equal(connections, 1);
    } finally {
      server.off("connection", count);
    }
  });

  it("turns an error event or a cut stream into an error", async () => {
    handler = (_, res) => json(res, 200, SB);
    const sb = await Sandbox.connect(SB.id, opts());
    handler = (_, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end(`${JSON.stringify({ type: "error", error: { code: "sandbox_enoent", message: "no such program" } })}\n`);
    };
    await assert.rejects(sb.commands.run("x"), (e: unknown) => e instanceof NotFoundError && e.message === "no such program");
    handler = (_, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end(`${JSON.stringify({ type: "start", pid: 1 })}\n`);
    };
    await assert.rejects(sb.commands.run("x"), (e: unknown) => e instanceof SandboxError && e.code === "bad_response");
    handler = (_, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end("<html>\n");
    };
    await assert.rejects(sb.commands.run("x"), (e: unknown) => e instanceof SandboxError && e.code === "bad_response" && /<html>/.test(e.message));
    handler = (_, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(`${JSON.stringify({ type: "start", pid: 1 })}\n`);
      setTimeout(() => res.destroy(), 50);
    };
    await assert.rejects(sb.commands.run("x"), (e: unknown) => e instanceof SandboxError && e.code === "connection_failed");
  });

  it("lets an error thrown by onStdout through as it is", async () => {
    handler = (_, res) => json(res, 200, SB);
    const sb = await Sandbox.connect(SB.id, opts());
    handler = (_, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(`${JSON.stringify({ type: "stdout", data: "aGk=" })}\n`);
    };
    const mine = new Error("mine");
    await assert.rejects(
      sb.commands.run("x", {
        onStdout: () => {
          throw mine;
        },
      }),
      (e: unknown) => e === mine,
    );
  });

  it("starts background commands and drives their stdin and signals", async () => {
    handler = (_, res) => json(res, 200, SB);
    const sb = await Sandbox.connect(SB.id, opts());
    handler = (req, res) => {
      if (req.url.endsWith("/exec")) return json(res, 200, { type: "start", pid: 42 });
      if (req.url.includes("/signal") && seen.filter((s) => s.url.includes("/signal")).length > 1) {
        return json(res, 404, { error: { code: "sandbox_esrch", message: "no such process" } });
      }
      res.writeHead(204).end();
    };
    const h = await sb.commands.run("cat", { background: true });
    assert.equal(h.pid, 42);
    assert.deepEqual(JSON.parse(seen[1]?.body.toString() ?? ""), { cmd: "cat", background: true, stdin: true });
    await h.sendStdin("héllo");
    assert.equal(seen[2]?.url, `/v1/sandboxes/${SB.id}/processes/42/stdin`);
    assert.equal(seen[2]?.contentType, "application/octet-stream");
    assert.equal(seen[2]?.body.toString(), "héllo");
    await h.closeStdin();
    assert.equal(seen[3]?.url, `/v1/sandboxes/${SB.id}/processes/42/stdin?eof=true`);
    assert.equal(await h.kill(), true);
    assert.deepEqual(JSON.parse(seen[4]?.body.toString() ?? ""), { signal: 9 });
    assert.equal(await h.kill(15), false);
  });

  it("streams file uploads and reads files as text, bytes or a stream", async () => {
    handler = (_, res) => json(res, 200, SB);
    const sb = await Sandbox.connect(SB.id, opts());
    handler = (req, res) => {
      if (req.method === "PUT") return json(res, 200, { path: "/d/f", size: req.body.length });
      if (req.url.includes("/files/stat")) return json(res, 404, { error: { code: "sandbox_enoent", message: "no such file" } });
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.from("ünï"));
    };
    async function* parts() {
      for (let i = 0; i < 4; i++) yield new Uint8Array(1000).fill(i);
    }
    assert.deepEqual(await sb.files.write("/d/f", parts(), { mode: 0o600 }), { path: "/d/f", size: 4000 });
    assert.equal(seen[1]?.url, `/v1/sandboxes/${SB.id}/files?path=%2Fd%2Ff&mode=600`);
    assert.equal(seen[1]?.contentType, "application/octet-stream");
    assert.equal(seen[1]?.body[3500], 3);
    await sb.files.write("/d/f", "text");
    assert.equal(seen[2]?.body.toString(), "text");
    await sb.files.write("/d/f", new Blob(["web ", "stream"]).stream());
    assert.equal(seen[3]?.body.toString(), "web stream");
    await sb.files.write("/d/f", Readable.from([Buffer.from("node "), Buffer.from("stream")]));
    assert.equal(seen[4]?.body.toString(), "node stream");
    assert.equal(await sb.files.read("/d/f"), "ünï");
    assert.deepEqual(await sb.files.read("/d/f", { format: "bytes" }), new Uint8Array(Buffer.from("ünï")));
    const chunks: Uint8Array[] = [];
    for await (const c of await sb.files.read("/d/f", { format: "stream" })) chunks.push(c);
    assert.equal(Buffer.concat(chunks).toString(), "ünï");
    assert.equal(await sb.files.exists("/nope"), false);
  });

  it("gives TimeoutError when the server does not answer in requestTimeoutMs", async () => {
    handler = () => {}; // never answers
    const t0 = Date.now();
    await assert.rejects(Sandbox.list({ ...opts(), requestTimeoutMs: 150 }), (e: unknown) => e instanceof TimeoutError && e.code === "request_timeout");
    assert.ok(Date.now() - t0 < 2000);
  });

  it("gives TimeoutError when a JSON answer starts but does not finish in requestTimeoutMs", async () => {
    handler = (_, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"sandboxes": ['); // and nothing more
    };
    const t0 = Date.now();
    await assert.rejects(Sandbox.list({ ...opts(), requestTimeoutMs: 150 }), (e: unknown) => e instanceof TimeoutError && e.code === "request_timeout");
    assert.ok(Date.now() - t0 < 2000);
  });

  it("gives SandboxError connection_failed when nothing listens", async () => {
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise((r) => dead.close(r));
    await assert.rejects(Sandbox.list({ apiUrl: `http://127.0.0.1:${port}`, apiKey: "k" }), (e: unknown) => e instanceof SandboxError && e.code === "connection_failed");
  });
});
