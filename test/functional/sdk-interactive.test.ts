// Interactive use through the SDK against a real daemon, over /v1/connect
// (terminal bytes as binary frames) and over HTTP only: terminals, joining
// a background command, listing commands, watching and renaming files.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";
import { testDaemon } from "../helpers/daemon.js";
import { Screen } from "../helpers/terminal.js";
import type { Daemon } from "../../src/server/daemon.js";
import { ConflictError, NotFoundError, Sandbox, type FilesystemEvent } from "../../sdk/src/index.js";

for (const transport of ["auto", "http"] as const) describe(`interactive SDK against corrald (${transport === "auto" ? "over /v1/connect" : "over HTTP only"})`, () => {
  let t: TestState;
  let d: Daemon;
  let sb: Sandbox;

  before(async () => {
    t = await freshState(`sdk-interactive-${transport}`);
    d = await testDaemon(t);
    sb = await Sandbox.create({ apiUrl: d.url, apiKey: t.s.tenants.createKey("alice").key, transport, template: "busybox" });
  });
  after(async () => {
    await d?.close();
    await t?.close();
  });

  it("runs a shell on a terminal: input, output, its size and a resize, Ctrl-C, the exit status", async () => {
    const screen = new Screen();
    const pty = await sb.pty.create({ rows: 24, cols: 80, envs: { PS1: "$ " }, onData: (b) => screen.push(Buffer.from(b)) });
    assert.ok(pty.pid > 1);
    let m = screen.mark();
    await pty.sendInput("echo hi; tty; stty size\n");
    await screen.waitFor(/\r\nhi\r\n\/dev\/pts\/\d+\r\n24 80/, m);
    await pty.resize({ rows: 50, cols: 132 });
    m = screen.mark();
    await pty.sendInput("stty size\n");
    await screen.waitFor(/50 132/, m);
    // It says so once it runs as the foreground job (the typed line shows sleep""ing): no clock guesses when.
    m = screen.mark();
    await pty.sendInput(`sh -c 'echo sleep""ing; exec sleep 100'\n`);
    await screen.waitFor(/\bsleeping\r?\n/, m);
    m = screen.mark();
    await pty.sendInput("\x03");
    await pty.sendInput("echo after $?\n");
    await screen.waitFor(/after 130/, m);
    m = screen.mark();
    await pty.sendInput("echo $TERM; exit 3\n");
    await screen.waitFor(/xterm-256color/, m);
    const r = await pty.wait();
    assert.equal(r.exitCode, 3);
  });

  it("joins a running terminal again, with what it printed before", async () => {
    const first = new Screen();
    const pty = await sb.pty.create({ rows: 10, cols: 40, cmd: ["/bin/sh"], envs: { PS1: "$ " }, onData: (b) => first.push(Buffer.from(b)) });
    await pty.sendInput("echo before-leaving\n");
    await first.waitFor(/\r\nbefore-leaving\r\n/);
    await pty.disconnect();
    const again = new Screen();
    const joined = await sb.pty.connect(pty.pid, { onData: (b) => again.push(Buffer.from(b)) });
    await again.waitFor(/\r\nbefore-leaving\r\n/); // the ring
    await joined.sendInput("echo back\n");
    await again.waitFor(/\r\nback\r\n/);
    assert.equal(await joined.kill(), true);
    assert.equal((await joined.wait()).signal, 9);
  });

  it("joins a background command after 2 s: its 50 lines arrive exactly once, in order", async () => {
    const bg = await sb.commands.run("for i in $(seq 1 50); do echo $i; sleep 0.1; done", { background: true });
    await new Promise((r) => setTimeout(r, 2000));
    const seen: string[] = [];
    const joined = await sb.commands.connect(bg.pid, { onStdout: (s) => void seen.push(s) });
    const r = await joined.wait();
    assert.equal(r.exitCode, 0);
    const lines = Array.from({ length: 50 }, (_, i) => String(i + 1));
    assert.deepEqual(seen.join("").trim().split("\n"), lines);
    assert.deepEqual(r.stdout.trim().split("\n"), lines);
    await assert.rejects(sb.commands.connect(bg.pid), NotFoundError);
  });

  it("lists the running commands, and reaches them by pid", async () => {
    const bg = await sb.commands.run(["sleep", "60"], { background: true, cwd: "/tmp" });
    const listed = (await sb.commands.list()).find((p) => p.pid === bg.pid);
    assert.deepEqual(listed && { argv: listed.argv, cwd: listed.cwd, background: listed.background, pty: listed.pty }, { argv: ["sleep", "60"], cwd: "/tmp", background: true, pty: false });
    assert.equal(await sb.commands.kill(bg.pid), true);
    assert.equal((await bg.wait()).signal, 9);
    assert.equal((await sb.commands.list()).some((p) => p.pid === bg.pid), false);
  });

  it("watches a directory and renames files", async () => {
    await sb.files.makeDir("/tmp/w/sub");
    const events: FilesystemEvent[] = [];
    const exits: (Error | undefined)[] = [];
    const w = await sb.files.watchDir("/tmp/w", (e) => void events.push(e), { recursive: true, onExit: (e) => exits.push(e) });
    await sb.files.write("/tmp/w/sub/a.txt", "a");
    await sb.files.rename("/tmp/w/sub/a.txt", "/tmp/w/b.txt");
    await assert.rejects(sb.files.rename("/tmp/w/nope", "/tmp/w/c"), NotFoundError);
    await sb.files.write("/tmp/w/c.txt", "c");
    await assert.rejects(sb.files.rename("/tmp/w/c.txt", "/tmp/w/b.txt", { noReplace: true }), ConflictError);
    await sb.files.remove("/tmp/w/b.txt");
    assert.equal(await sb.files.exists("/tmp/w/b.txt"), false);
    assert.equal(await sb.files.exists("/tmp/w/c.txt"), true);
    const want = ["create sub/a.txt", "write sub/a.txt", "rename sub/a.txt", "create b.txt", "remove b.txt"];
    for (let i = 0; i < 500 && !want.every((x) => events.some((e) => `${e.type} ${e.name}` === x)); i++) await new Promise((r) => setTimeout(r, 20));
    const got = events.map((e) => `${e.type} ${e.name}`);
    for (const x of want) assert.ok(got.includes(x), `no "${x}" in ${got.join(", ")}`);
    await w.stop();
    assert.deepEqual(exits, [undefined]);
    await assert.rejects(sb.files.watchDir("/tmp/none", () => {}), NotFoundError);
  });
});
