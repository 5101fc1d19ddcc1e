// The API's defences: keys, tenant isolation, hostile ids and paths, an
// upload far over the disk cap, an oversized body, and a client that sends
// its headers one byte a second.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";

describe("API security", () => {
  let t: TestState;
  let d: Daemon;
  let keyA: string;
  let keyB: string;
  let sbA: string;
  before(async () => {
    t = await freshState("api");
    d = await testDaemon(t, { bodyLimit: 64 * 1024, headersTimeoutMs: 2000 });
    keyA = d.sandboxes.tenants.createKey("tenant-a").key;
    keyB = d.sandboxes.tenants.createKey("tenant-b").key;
    const r = await request(d.url, "POST", "/v1/sandboxes", { key: keyA, json: { template: "busybox", name: "a1", resources: { disk: "100M" } } });
    assert.equal(r.status, 201, r.text);
    sbA = r.json<{ id: string }>().id;
  });
  after(async () => {
    await d.close();
    await t.close();
  });

  it("refuses requests without a valid key", async () => {
    for (const key of [undefined, "wrong", `${keyA.slice(0, -2)}xx`]) {
      const r = await request(d.url, "GET", "/v1/sandboxes", key ? { key } : {});
      assert.equal(r.status, 401);
      assert.equal(r.json<{ error: { code: string } }>().error.code, "unauthorized");
    }
    const viaHeader = await request(d.url, "GET", "/v1/sandboxes", { headers: { "x-api-key": keyA } });
    assert.equal(viaHeader.status, 200);
    assert.equal((await request(d.url, "GET", "/health")).status, 200);
  });

  it("hides one tenant's sandboxes from another", async () => {
    const list = await request(d.url, "GET", "/v1/sandboxes", { key: keyB });
    assert.deepEqual(list.json<{ sandboxes: unknown[] }>().sandboxes, []);
    for (const [method, path, json] of [
      ["GET", `/v1/sandboxes/${sbA}`, undefined],
      ["GET", "/v1/sandboxes/a1", undefined],
      ["POST", `/v1/sandboxes/${sbA}/exec`, { cmd: "true" }],
      ["GET", `/v1/sandboxes/${sbA}/files?path=/etc/passwd`, undefined],
      ["POST", `/v1/sandboxes/${sbA}/timeout`, { timeoutSeconds: 1 }],
      ["DELETE", `/v1/sandboxes/${sbA}`, undefined],
    ] as const) {
      const r = await request(d.url, method, path, { key: keyB, ...(json ? { json } : {}) });
      assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
      assert.equal(r.json<{ error: { code: string } }>().error.code, "sandbox_not_found");
    }
    assert.equal((await request(d.url, "GET", `/v1/sandboxes/${sbA}`, { key: keyA })).status, 200);
  });

  it("rejects hostile ids and keeps file paths inside the sandbox", async () => {
    for (const id of ["..%2F..%2Fetc", "%2e%2e", "A1", "x%00y"]) {
      const r = await request(d.url, "GET", `/v1/sandboxes/${id}`, { key: keyA });
      assert.ok(r.status === 400 || r.status === 404, `${id}: ${r.status}`);
    }
    const put = await request(d.url, "PUT", `/v1/sandboxes/${sbA}/files?path=${encodeURIComponent("/../../../tmp/escape.txt")}`, {
      key: keyA,
      body: "inside",
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(put.status, 200, put.text);
    const back = await request(d.url, "GET", `/v1/sandboxes/${sbA}/files?path=/tmp/escape.txt`, { key: keyA });
    assert.equal(back.text, "inside");
    // An upload sent as JSON is a 415 that says what the endpoint takes, and writes nothing.
    const asJson = await request(d.url, "PUT", `/v1/sandboxes/${sbA}/files?path=/tmp/json.txt`, { key: keyA, json: { data: "x" } });
    assert.equal(asJson.status, 415, asJson.text);
    assert.equal(asJson.json<{ error: { code: string } }>().error.code, "unsupported_media_type");
    assert.match(asJson.text, /writeFile takes application\/octet-stream, not application\/json/);
    assert.equal((await request(d.url, "GET", `/v1/sandboxes/${sbA}/files?path=/tmp/json.txt`, { key: keyA })).status, 404);
    const rel = await request(d.url, "GET", `/v1/sandboxes/${sbA}/files?path=etc/passwd`, { key: keyA });
    assert.equal(rel.status, 400);
    const magic = await request(d.url, "GET", `/v1/sandboxes/${sbA}/files?path=/proc/1/root/etc/passwd`, { key: keyA });
    assert.ok(magic.status >= 400 && magic.status < 500, magic.text);
  });

  it("answers a 2 GiB upload to a 100 MiB disk with ENOSPC and stays healthy", async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const total = 2 * 1024 * 1024 * 1024;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(new URL(`/v1/sandboxes/${sbA}/files?path=/work/huge.bin`, d.url), {
        method: "PUT",
        headers: { authorization: `Bearer ${keyA}`, "content-type": "application/octet-stream", "content-length": String(total) },
      });
      let sent = 0;
      let answered = false;
      req.on("response", (r) => {
        answered = true;
        let body = "";
        r.on("data", (c) => (body += c));
        r.on("end", () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on("error", (e) => {
        if (!answered) reject(e);
      });
      const pump = () => {
        while (!answered && sent < total) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        if (!answered) req.end();
      };
      pump();
    });
    assert.equal(res.status, 507, res.body);
    assert.match(res.body, /ENOSPC/i);
    assert.equal((await request(d.url, "GET", "/health")).status, 200);
    const exec = await request(d.url, "POST", `/v1/sandboxes/${sbA}/exec`, { key: keyA, json: { cmd: "rm -f /work/huge.bin; echo ok" } });
    assert.match(exec.text, /"exit","exitCode":0/);
  });

  it("refuses a JSON body over the limit with 413", async () => {
    const r = await request(d.url, "POST", "/v1/sandboxes", {
      key: keyA,
      json: { template: "busybox", labels: { big: "x".repeat(100 * 1024) } },
    });
    assert.equal(r.status, 413);
    assert.equal(r.json<{ error: { code: string } }>().error.code, "payload_too_large");
  });

  it("cuts off a client that sends headers one byte a second, serving others meanwhile", async () => {
    const { port } = new URL(d.url);
    const slow = net.connect(Number(port), "127.0.0.1");
    let closedAt = 0;
    const closed = new Promise<void>((resolve) => slow.on("close", () => ((closedAt = Date.now()), resolve())));
    slow.on("error", () => {});
    const started = Date.now();
    const text = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(60);
    let i = 0;
    const timer = setInterval(() => {
      if (i < text.length && !slow.destroyed) slow.write(text[i++]!);
    }, 1000);
    try {
      // Others are answered while the slow client is still connected (before it is cut off): nobody waits behind it.
      let servedMeanwhile = 0;
      for (let k = 0; k < 5; k++) {
        assert.equal((await request(d.url, "GET", "/health")).status, 200);
        if (closedAt === 0) servedMeanwhile++;
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.ok(servedMeanwhile > 0, "another client waited behind the slow one");
      await closed;
      // Cut off before it could finish its headers at one byte a second.
      assert.ok(i < text.length, `slow client kept until its headers were whole (${closedAt - started} ms)`);
    } finally {
      clearInterval(timer);
      slow.destroy();
    }
  });
});
