// A sandbox's ports through the daemon's port proxy: routed by the Host
// header (PORT-ID.localhost), reached through the agent's TCP stream (so a
// network "none" sandbox serves them), authorised by the tenant's key, the
// sandbox's access token (once in the URL, then a cookie) or a public
// port, and WebSocket-style upgrades carried both ways. Every byte stays
// on loopback.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";

describe("port proxy", () => {
  let t: TestState;
  let d: Daemon;
  let key: string;
  let otherKey: string;
  let id: string;
  let pub: string;
  const host = (port: number, sandbox: string) => `${port}-${sandbox}.localhost:${new URL(d.url).port}`;
  const get = (port: number, sandbox: string, o: { key?: string; headers?: Record<string, string>; path?: string } = {}) =>
    request(d.url, "GET", o.path ?? "/index.html", { ...(o.key ? { key: o.key } : {}), headers: { host: host(port, sandbox), ...o.headers } });
  const sh = async (sandbox: string, cmd: string) => {
    const r = await request(d.url, "POST", `/v1/sandboxes/${sandbox}/exec`, { key, json: { cmd } });
    assert.equal(r.status, 200, r.text);
  };

  before(async () => {
    t = await freshState("ports");
    d = await testDaemon(t);
    t.s.tenants.create("acme");
    t.s.tenants.create("other");
    key = t.s.tenants.createKey("acme").key;
    otherKey = t.s.tenants.createKey("other").key;
    const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox" } });
    assert.equal(r.status, 201, r.text);
    id = r.json<{ id: string }>().id;
    const p = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", network: { mode: "none", ports: [{ port: 8000, public: true }] } } });
    assert.equal(p.status, 201, p.text);
    pub = p.json<{ id: string }>().id;
    for (const sb of [id, pub]) {
      await sh(sb, "mkdir -p /www && echo served-from-sandbox > /www/index.html && (httpd -p 127.0.0.1:8000 -h /www &)");
    }
    // An upgrade endpoint: answers 101 to the first request, then echoes.
    const ws = [
      "cat > /ws.sh <<'EOF'",
      "#!/bin/sh",
      'while read -r l; do l=$(printf %s "$l" | tr -d "\\r"); [ -z "$l" ] && break; done',
      'printf "HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n"',
      "exec cat",
      "EOF",
      "chmod +x /ws.sh",
      "(while true; do nc -l -p 9000 -e /ws.sh; done >/dev/null 2>&1 &)",
    ].join("\n");
    await sh(id, ws);
  });
  after(async () => {
    await d?.close();
    await t?.close();
  });

  it("serves a network none sandbox's port with the tenant's key, and refuses without", async () => {
    let r = await get(8000, id, { key });
    for (let i = 0; i < 200 && r.status === 502; i++) r = await new Promise((res) => setTimeout(res, 100)).then(() => get(8000, id, { key }));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, "served-from-sandbox\n");
    assert.equal((await get(8000, id)).status, 401);
    assert.equal((await get(8000, id, { key: otherKey })).status, 403);
    assert.equal((await get(8000, id, { key: "crl_nope_nope" })).status, 401);
    assert.equal((await get(8000, "0123456789abcdef", { key })).status, 404);
    assert.equal((await get(8001, id, { key })).status, 502, "nothing listens on 8001");
  });

  it("takes the access token once in the URL, then as a cookie or a header", async () => {
    const info = await request(d.url, "GET", `/v1/sandboxes/${id}/ports/8000`, { key });
    assert.equal(info.status, 200, info.text);
    const { url, token, public: isPublic } = info.json<{ url: string; token: string; public: boolean }>();
    assert.equal(url, `http://${host(8000, id)}/`);
    assert.equal(isPublic, false);
    const first = await get(8000, id, { path: `/index.html?corral_token=${token}` });
    assert.equal(first.status, 200, first.text);
    const cookie = String(first.headers["set-cookie"]).split(";")[0]!;
    assert.equal((await get(8000, id, { headers: { cookie } })).status, 200);
    assert.equal((await get(8000, id, { headers: { "x-corral-token": token } })).status, 200);
    assert.equal((await get(8000, id, { headers: { "x-corral-token": `${token.slice(1)}x` } })).status, 403);
    assert.equal((await get(8000, pub, { headers: { "x-corral-token": token } })).status, 200, "a public port needs nothing");
    assert.equal((await get(8000, pub)).text, "served-from-sandbox\n");
  });

  it("serves a microVM's port the same way, through its agent", async () => {
    const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", backend: "vm" } });
    assert.equal(r.status, 201, r.text);
    const vm = r.json<{ id: string }>().id;
    await sh(vm, "mkdir -p /www && echo served-from-a-vm > /www/index.html && (httpd -p 127.0.0.1:8000 -h /www &)");
    let got = await get(8000, vm, { key });
    for (let i = 0; i < 200 && got.status === 502; i++) got = await new Promise((res) => setTimeout(res, 100)).then(() => get(8000, vm, { key }));
    assert.equal(got.status, 200, got.text);
    assert.equal(got.text, "served-from-a-vm\n");
    assert.equal((await get(8000, vm)).status, 401);
    assert.equal((await request(d.url, "DELETE", `/v1/sandboxes/${vm}`, { key })).status, 204);
  });

  it("carries an upgrade both ways", async () => {
    const sock = net.connect(Number(new URL(d.url).port), "127.0.0.1");
    await new Promise((r) => sock.once("connect", r));
    let got = "";
    sock.on("data", (b: Buffer) => (got += b.toString()));
    sock.write(`GET /chat HTTP/1.1\r\nHost: ${host(9000, id)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer ${key}\r\n\r\n`);
    for (let i = 0; i < 100 && !got.includes("\r\n\r\n"); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(got, /^HTTP\/1\.1 101 /, JSON.stringify(got));
    got = "";
    sock.write("ping through the tunnel\n");
    for (let i = 0; i < 100 && !got.includes("ping through the tunnel"); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(got, "ping through the tunnel\n");
    sock.destroy();
    const none = net.connect(Number(new URL(d.url).port), "127.0.0.1");
    let refused = "";
    none.on("data", (b: Buffer) => (refused += b.toString()));
    none.write(`GET /chat HTTP/1.1\r\nHost: ${host(9000, id)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
    await new Promise((r) => none.once("close", r));
    assert.match(refused, /^HTTP\/1\.1 401 /);
  });
});
