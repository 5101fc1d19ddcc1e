// The debian template: built from Debian's packages with mmdebstrap on
// first use (into this suite's own state dir), then python3 and git work,
// and a python3 web server and WebSocket echo in it are served through the
// daemon's port URLs (every byte on loopback).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { Screen } from "../helpers/terminal.js";

/**
 * A WebSocket echo server in python3's standard library (RFC 6455: the
 * accept hash, masked client frames in, unmasked text frames back): what a
 * user's dev server would be, with nothing installed.
 */
const WS_ECHO = String.raw`
import base64, hashlib, socket, struct, threading
def serve(c):
    req = b""
    while b"\r\n\r\n" not in req:
        req += c.recv(4096)
    key = [l.split(b":", 1)[1].strip() for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
    acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    f = c.makefile("rb")
    while True:
        h = f.read(2)
        if len(h) < 2: return c.close()
        b0, b1 = h
        n = b1 & 127
        if n == 126: n = struct.unpack(">H", f.read(2))[0]
        elif n == 127: n = struct.unpack(">Q", f.read(8))[0]
        mask = f.read(4)
        data = bytes(x ^ mask[i % 4] for i, x in enumerate(f.read(n)))
        if b0 & 15 == 8: return c.close()
        c.sendall(bytes([0x81, len(data)]) + data if len(data) < 126 else bytes([0x81, 126]) + struct.pack(">H", len(data)) + data)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 8765)); s.listen()
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
`;

describe("debian template", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("debian");
  });
  after(async () => t.close());

  it("builds once, with progress, and runs python3 and git", async () => {
    const phases: string[] = [];
    const sb = await t.s.create({ template: "debian" }, { onProgress: (p) => phases.push(p.phase) });
    assert.ok(phases.includes("download") && phases.includes("finalize"), phases.join(","));
    const out: Buffer[] = [];
    const r = await t.s.exec(sb.id, { argv: ["python3", "-c", "import os, sys; print(os.getpid(), sys.version_info[0])"] }, { onStdout: (b) => out.push(b) });
    assert.equal(r.exitCode, 0);
    const [pid, major] = Buffer.concat(out).toString().trim().split(" ");
    assert.ok(Number(pid) < 10, `pid ${pid}`);
    assert.equal(major, "3");
    assert.equal((await t.s.exec(sb.id, { cmd: "git --version && bash -c 'echo $BASH_VERSION' && ls /etc/ssl/certs | grep -q . " })).exitCode, 0);
    // A second sandbox reuses the built layer.
    const again: string[] = [];
    await t.s.create({ template: "debian" }, { onProgress: (p) => again.push(p.phase) });
    assert.deepEqual(again, []);
  });

  it("boots the same template as a microVM, with python3 on its own kernel", async () => {
    const vm = await t.s.create({ template: "debian", backend: "vm" });
    const out: Buffer[] = [];
    const r = await t.s.exec(vm.id, { cmd: "python3 -c 'import platform; print(platform.release())'; id -un; stat -c %U /etc/passwd" }, { onStdout: (b) => out.push(b) });
    assert.equal(r.exitCode, 0);
    const [release, user, owner] = Buffer.concat(out).toString().trim().split("\n");
    assert.match(release ?? "", /cloud-amd64$/);
    assert.deepEqual([user, owner], ["root", "root"]);
  });

  for (const backend of ["container", "vm"] as const) {
    it(`runs bash on a terminal (${backend}): tty, stty size and a resize, Ctrl-C, the exit status`, async () => {
      const sb = await t.s.create({ template: "debian", backend });
      const screen = new Screen();
      const { handle, outcome, end } = await t.s.startExec(sb.id, { argv: ["bash", "--norc", "--noprofile", "-i"], pty: { rows: 33, cols: 101 }, env: { PS1: "$ " } }, { onStdout: (b) => screen.push(b) });
      try {
        let m = screen.mark();
        await handle.writeStdin("echo $BASH_VERSION; tty; stty size\n");
        await screen.waitFor(/\n5\.[\d.()a-z-]+\r?\n\/dev\/pts\/\d+\r?\n33 101/, m);
        await handle.resize({ rows: 44, cols: 132 });
        m = screen.mark();
        await handle.writeStdin("stty size\n");
        await screen.waitFor(/44 132/, m);
        // It says so once it runs as the foreground job (the typed line shows sleep""ing): no clock guesses when.
        m = screen.mark();
        await handle.writeStdin(`sh -c 'echo sleep""ing; exec sleep 100'; echo not-interrupted\n`);
        await screen.waitFor(/\bsleeping\r?\n/, m);
        m = screen.mark();
        await handle.writeStdin("\x03");
        await handle.writeStdin("echo after $?\n");
        await screen.waitFor(/after 130/, m);
        assert.doesNotMatch(screen.all, /^not-interrupted/m);
        await handle.writeStdin("exit 5\n");
        assert.equal((await outcome).exitCode, 5);
      } finally {
        end();
        await t.s.destroy(sb.id);
      }
    });
  }

  it("serves python3 -m http.server and a WebSocket echo through port URLs, with a key only", async () => {
    const d = await testDaemon(t);
    try {
      t.s.tenants.create("web");
      const key = t.s.tenants.createKey("web").key;
      const c = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "debian" } });
      assert.equal(c.status, 201, c.text);
      const id = c.json<{ id: string }>().id;
      const sh = async (cmd: string) => assert.equal((await request(d.url, "POST", `/v1/sandboxes/${id}/exec`, { key, json: { cmd } })).status, 200);
      await sh(`mkdir -p /srv && echo from-python > /srv/hello.txt && cat > /ws.py <<'EOF'\n${WS_ECHO}\nEOF`);
      await sh("cd /srv && (python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &) && (python3 /ws.py >/dev/null 2>&1 &)");
      const port = new URL(d.url).port;
      const host = (p: number) => `${p}-${id}.localhost:${port}`;
      let got = await request(d.url, "GET", "/hello.txt", { key, headers: { host: host(8000) } });
      for (let i = 0; i < 200 && got.status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100)); // the server binding its port
        got = await request(d.url, "GET", "/hello.txt", { key, headers: { host: host(8000) } });
      }
      assert.equal(got.status, 200, got.text);
      assert.equal(got.text, "from-python\n");
      assert.equal((await request(d.url, "GET", "/hello.txt", { headers: { host: host(8000) } })).status, 401);

      // The echo server started beside http.server: it may still be binding its port (502 until then).
      let echoed: string | Error = new Error("not tried");
      for (let i = 0; i < 100; i++) {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host: host(8765), authorization: `Bearer ${key}` } });
        echoed = await new Promise<string | Error>((resolve) => {
          ws.once("open", () => ws.send("hello over a websocket"));
          ws.once("message", (m: Buffer) => resolve(m.toString()));
          ws.once("unexpected-response", (_req, res) => resolve(new Error(`HTTP ${res.statusCode}`)));
          ws.once("error", (e) => resolve(e));
        });
        ws.terminate();
        if (!(echoed instanceof Error && /502/.test(echoed.message))) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(echoed, "hello over a websocket");
      const refused = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host: host(8765) } });
      const status = await new Promise<number>((resolve) => {
        refused.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        refused.once("open", () => resolve(101));
        refused.once("error", () => {});
      });
      assert.equal(status, 401);
      refused.terminate();
      assert.equal((await request(d.url, "DELETE", `/v1/sandboxes/${id}`, { key })).status, 204);
    } finally {
      await d.close();
    }
  });
});
