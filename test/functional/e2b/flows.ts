// What E2B's SDK does with one sandbox, the same on every backend (called
// by e2b-sdk.test.ts inside a backend's describe, on its sandbox, made with
// metadata { app: "e2b-test", run: "1" }, envs { GREETING: "hello" } and a
// 600 s timeout). In order: later cases use files earlier ones wrote, and
// the last kills the sandbox.
import assert from "node:assert/strict";
import { AuthenticationError, CommandExitError, FileNotFoundError, NotFoundError, Sandbox, SandboxError, SandboxNotFoundError, TimeoutError } from "e2b";
import type { FilesystemEvent } from "e2b";
import { Screen } from "../../helpers/terminal.js";

type It = (title: string, fn: () => Promise<void>) => unknown;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves when `pred` holds of what `get` gives, polling (no time is asserted). */
export async function until<T>(get: () => T, pred: (v: T) => boolean): Promise<void> {
  while (!pred(get())) await sleep(20);
}

export function e2bFlows(it: It, ctx: () => { sb: Sandbox }): void {
  it("creates a sandbox of E2B's default template, with its metadata, envs and timeout", async () => {
    const { sb } = ctx();
    assert.match(sb.sandboxId, /^[0-9a-f]{16}$/);
    const info = await sb.getInfo();
    assert.equal(info.templateId, "base");
    assert.equal(info.state, "running");
    assert.deepEqual(info.metadata, { app: "e2b-test", run: "1" });
    assert.equal(info.endAt.getTime() - info.startedAt.getTime(), 600_000);
    const r = await sb.commands.run('echo "$GREETING from $(id -un) in $PWD with $HOME"; bash --version | head -1');
    assert.match(r.stdout, /^hello from user in \/home\/user with \/home\/user\nGNU bash/);
    assert.equal((await sb.commands.run("id -u", { user: "root" })).stdout, "0\n");
  });

  it("streams a command's stdout and stderr to onStdout and onStderr as it runs", async () => {
    const { sb } = ctx();
    let out = "";
    let err = "";
    const h = await sb.commands.run("echo one; echo uno >&2; read x; echo two $x", {
      background: true,
      stdin: true,
      onStdout: (s) => void (out += s),
      onStderr: (s) => void (err += s),
    });
    // The command waits for its stdin: what came so far came while it ran.
    await until(() => out + err, (s) => s.includes("one") && s.includes("uno"));
    assert.equal(out, "one\n");
    await sb.commands.sendStdin(h.pid, "go\n");
    const r = await h.wait();
    assert.deepEqual([r.exitCode, r.stdout, r.stderr, out], [0, "one\ntwo go\n", "uno\n", "one\ntwo go\n"]);
  });

  it("throws CommandExitError with the result for a non-zero exit", async () => {
    const { sb } = ctx();
    await assert.rejects(sb.commands.run("echo out; echo err >&2; exit 3"), (e: unknown) => {
      assert.ok(e instanceof CommandExitError);
      assert.deepEqual([e.exitCode, e.stdout, e.stderr, e.error], [3, "out\n", "err\n", "exit status 3"]);
      return true;
    });
  });

  it("runs a command in the background, lists it, kills it, and wait reports the kill", async () => {
    const { sb } = ctx();
    const h = await sb.commands.run("sleep 600", { background: true, cwd: "/tmp", envs: { MARK: "x" } });
    const listed = (await sb.commands.list()).find((p) => p.pid === h.pid);
    assert.deepEqual(listed && [listed.cmd, listed.args, listed.envs, listed.cwd], ["/bin/bash", ["-l", "-c", "sleep 600"], { MARK: "x" }, "/tmp"]);
    assert.equal(await h.kill(), true);
    await assert.rejects(h.wait(), (e: unknown) => e instanceof CommandExitError && e.exitCode === -1 && e.error === "signal: killed");
    assert.ok(!(await sb.commands.list()).some((p) => p.pid === h.pid));
    assert.equal(await sb.commands.kill(h.pid), false);
  });

  it("sends stdin to a command and closes it", async () => {
    const { sb } = ctx();
    const h = await sb.commands.run("cat; echo done", { background: true, stdin: true });
    await h.sendStdin("abc ");
    await sb.commands.sendStdin(h.pid, new TextEncoder().encode("def"));
    await h.closeStdin();
    assert.equal((await h.wait()).stdout, "abc defdone\n");
    // One RPC message is bounded (RPC_MESSAGE_LIMIT): a megabyte goes in one call, twenty do not.
    const wc = await sb.commands.run("wc -c", { background: true, stdin: true });
    await wc.sendStdin("y".repeat(1024 * 1024));
    await assert.rejects(wc.sendStdin("z".repeat(20 * 1024 * 1024)), SandboxError);
    await wc.closeStdin();
    assert.equal((await wc.wait()).stdout, `${1024 * 1024}\n`);
  });

  it("connects to a running command: what it printed before (the agent's ring), then the rest and its end", async () => {
    const { sb } = ctx();
    let seen = "";
    const h = await sb.commands.run("echo early; read x; echo got $x", { background: true, stdin: true, onStdout: (s) => void (seen += s) });
    await until(() => seen, (s) => s === "early\n");
    await h.disconnect();
    let joined = "";
    const again = await sb.commands.connect(h.pid, { onStdout: (s) => void (joined += s) });
    await until(() => joined, (s) => s === "early\n");
    await again.sendStdin("late\n");
    const r = await again.wait();
    assert.deepEqual([r.exitCode, r.stdout, joined], [0, "early\ngot late\n", "early\ngot late\n"]);
    await assert.rejects(sb.commands.connect(h.pid), NotFoundError);
  });

  it("ends a command at its timeoutMs with E2B's TimeoutError, and the command with it", async () => {
    const { sb } = ctx();
    await assert.rejects(sb.commands.run("sleep 600; echo never", { timeoutMs: 1000 }), TimeoutError);
    while ((await sb.commands.list()).some((p) => p.args.includes("sleep 600; echo never"))) await sleep(50);
  });

  it("writes files: a string, bytes, a stream, gzip'ed, and many at once, owned by the user", async () => {
    const { sb } = ctx();
    const one = await sb.files.write("notes/a.txt", "alpha");
    assert.deepEqual([one.path, one.name, one.type], ["/home/user/notes/a.txt", "a.txt", "file"]);
    await sb.files.write("/tmp/bytes.bin", new Uint8Array([0, 1, 2, 255]).buffer);
    await sb.files.write("streamed.txt", new Blob(["from a stream"]).stream());
    await sb.files.write("zipped.txt", "gzip'ed on the way", { gzip: true });
    const many = await sb.files.write([
      { path: "many/1.txt", data: "1" },
      { path: "/tmp/many/2.txt", data: new Uint8Array([50, 50]).buffer },
    ]);
    assert.deepEqual(many.map((w) => w.path), ["/home/user/many/1.txt", "/tmp/many/2.txt"]);
    const owners = await sb.commands.run("stat -c '%U %a %n' notes notes/a.txt /tmp/many /tmp/many/2.txt");
    assert.equal(owners.stdout, "user 755 notes\nuser 644 notes/a.txt\nuser 755 /tmp/many\nuser 644 /tmp/many/2.txt\n");
    // Enough long names that giving them to the user takes more than one chown.
    const names = Array.from({ length: 150 }, (_, i) => `wide/${String(i).padStart(3, "0")}-${"n".repeat(240)}`);
    assert.equal((await sb.files.write(names.map((path) => ({ path, data: path.slice(5, 8) })))).length, 150);
    assert.equal((await sb.commands.run("find wide ! -user user | wc -l; cat wide/149-*")).stdout, "0\n149");
    await sb.files.write("/root/secret.txt", "root's", { user: "root" });
    assert.equal((await sb.commands.run("stat -c %U /root/secret.txt", { user: "root" })).stdout, "root\n");
  });

  it("reads files as text, bytes and a stream", async () => {
    const { sb } = ctx();
    assert.equal(await sb.files.read("notes/a.txt"), "alpha");
    assert.deepEqual([...(await sb.files.read("/tmp/bytes.bin", { format: "bytes" }))], [0, 1, 2, 255]);
    let streamed = "";
    for await (const c of await sb.files.read("streamed.txt", { format: "stream" })) streamed += Buffer.from(c).toString();
    assert.equal(streamed, "from a stream");
    assert.equal(await sb.files.read("zipped.txt"), "gzip'ed on the way");
    const big = new Uint8Array(3 * 1024 * 1024 + 7).fill(120);
    await sb.files.write("big.bin", big.buffer);
    assert.equal((await sb.files.read("big.bin", { format: "bytes" })).length, big.length);
  });

  it("lists, checks, makes, describes, renames and removes", async () => {
    const { sb } = ctx();
    const listed = await sb.files.list("notes");
    assert.deepEqual(listed.map((e) => [e.name, e.type, e.path, e.size, e.owner, e.permissions]), [["a.txt", "file", "/home/user/notes/a.txt", 5, "user", "-rw-r--r--"]]);
    assert.deepEqual((await sb.files.list("/tmp/many", { depth: 2 })).map((e) => e.path), ["/tmp/many/2.txt"]);
    assert.deepEqual([await sb.files.exists("notes/a.txt"), await sb.files.exists("notes/none")], [true, false]);
    assert.equal(await sb.files.makeDir("made/deeper"), true);
    assert.equal(await sb.files.makeDir("made/deeper"), false);
    assert.equal((await sb.commands.run("stat -c %U made made/deeper")).stdout, "user\nuser\n");
    const info = await sb.files.getInfo("made");
    assert.deepEqual([info.name, info.type, info.path, info.permissions, info.owner, info.group], ["made", "dir", "/home/user/made", "drwxr-xr-x", "user", "user"]);
    assert.ok(info.modifiedTime instanceof Date);
    // A rename into directories that are not there yet makes them (the user's), as envd's Move.
    await sb.files.write("made/old.txt", "moving");
    const moved = await sb.files.rename("made/old.txt", "moved/deep/new.txt");
    assert.deepEqual([moved.name, moved.type, moved.path, moved.size, moved.owner], ["new.txt", "file", "/home/user/moved/deep/new.txt", 6, "user"]);
    assert.deepEqual([await sb.files.exists("made/old.txt"), await sb.files.read("moved/deep/new.txt")], [false, "moving"]);
    assert.equal((await sb.commands.run("stat -c %U moved moved/deep")).stdout, "user\nuser\n");
    assert.equal((await sb.files.rename("moved/deep", "made/deep")).type, "dir");
    await assert.rejects(sb.files.rename("made/old.txt", "made/x.txt"), FileNotFoundError);
    await sb.files.remove("made");
    assert.equal(await sb.files.exists("made"), false);
    await sb.files.remove("made"); // gone already: as envd's RemoveAll, not an error
  });

  it("watches a directory: creates, writes, renames and removes, recursively, until stopped", async () => {
    const { sb } = ctx();
    await sb.files.makeDir("watched");
    const events: FilesystemEvent[] = [];
    const w = await sb.files.watchDir("watched", (e) => void events.push(e), { recursive: true });
    const seen = () => events.map((e) => `${e.type} ${e.name}`);
    const step = async (cmd: string, want: string[]) => {
      await sb.commands.run(`cd watched && ${cmd}`);
      await until(seen, (s) => want.every((x) => s.includes(x)));
    };
    await step("echo x > a.txt", ["create a.txt", "write a.txt"]);
    // A new directory is watched once its create is seen (the agent adds it then): what is made in it after that is reported.
    await step("mkdir sub", ["create sub"]);
    await step("echo y > sub/b.txt && mv a.txt c.txt && chmod 600 c.txt && rm c.txt", ["create sub/b.txt", "rename a.txt", "create c.txt", "chmod c.txt", "remove c.txt"]);
    const want = ["create a.txt", "write a.txt", "create sub", "create sub/b.txt", "rename a.txt", "create c.txt", "chmod c.txt", "remove c.txt"];
    // In the order they happened (the kernel's).
    const order = want.map((x) => seen().indexOf(x));
    assert.deepEqual([...order].sort((a, b) => a - b), order, seen().join(", "));
    await w.stop();
    await assert.rejects(sb.files.watchDir("no/such/dir", () => {}), FileNotFoundError);
  });

  it("runs a terminal: input, its size and a resize, reattach with what it showed, and kill", async () => {
    const { sb } = ctx();
    const screen = new Screen();
    const term = await sb.pty.create({ cols: 100, rows: 30, onData: (b) => screen.push(Buffer.from(b)) });
    let m = screen.mark();
    await sb.pty.sendInput(term.pid, new TextEncoder().encode("tty; stty size; id -un\n"));
    await screen.waitFor(/\/dev\/pts\/\d+\r?\n30 100\r?\nuser\r?\n/, m);
    await sb.pty.resize(term.pid, { cols: 120, rows: 40 });
    m = screen.mark();
    await sb.pty.sendInput(term.pid, new TextEncoder().encode("stty size\n"));
    await screen.waitFor(/40 120/, m);
    assert.ok((await sb.commands.list()).some((p) => p.pid === term.pid && p.cmd === "/bin/bash" && p.args.join(" ") === "-i -l"));
    // A second client joins the same terminal and first sees what it showed.
    await term.disconnect();
    const again = new Screen();
    const joined = await sb.pty.connect(term.pid, { onData: (b) => again.push(Buffer.from(b)) });
    await again.waitFor(/40 120/);
    m = again.mark();
    await sb.pty.sendInput(term.pid, new TextEncoder().encode("echo still $((6*7))\n"));
    await again.waitFor(/still 42/, m);
    assert.equal(await sb.pty.kill(term.pid), true);
    await assert.rejects(joined.wait(), (e: unknown) => e instanceof CommandExitError && e.error === "signal: killed");
    assert.equal(await sb.pty.kill(term.pid), false);
  });

  it("finds the sandbox by its metadata, sets its timeout and connects to it again", async () => {
    const { sb } = ctx();
    const mine = await Sandbox.list({ query: { metadata: { app: "e2b-test" } } }).nextItems();
    assert.deepEqual(mine.map((s) => [s.sandboxId, s.metadata["run"]]), [[sb.sandboxId, "1"]]);
    assert.deepEqual(await Sandbox.list({ query: { metadata: { app: "another" } } }).nextItems(), []);
    await sb.setTimeout(900_000);
    const info = await Sandbox.getInfo(sb.sandboxId);
    assert.ok(Math.abs(info.endAt.getTime() - Date.now() - 900_000) < 60_000, `endAt ${info.endAt.toISOString()}`);
    const again = await Sandbox.connect(sb.sandboxId);
    assert.equal((await again.commands.run("cat notes/a.txt")).stdout, "alpha");
    assert.equal(await again.isRunning(), true);
  });

  it("raises the SDK's errors for a missing sandbox, a wrong key and a file that is not there", async () => {
    const { sb } = ctx();
    await assert.rejects(Sandbox.getInfo("0123456789abcdef"), SandboxNotFoundError);
    await assert.rejects(Sandbox.connect("0123456789abcdef"), SandboxNotFoundError);
    await assert.rejects(Sandbox.setTimeout("0123456789abcdef", 10_000), SandboxNotFoundError);
    assert.equal(await Sandbox.kill("0123456789abcdef"), false);
    await assert.rejects(Sandbox.create({ apiKey: "crl_0123456789abcdef_nope" }), AuthenticationError);
    await assert.rejects(Sandbox.list({ apiKey: "crl_0123456789abcdef_nope" }).nextItems(), AuthenticationError);
    await assert.rejects(Sandbox.getInfo(sb.sandboxId, { apiKey: "crl_0123456789abcdef_nope" }), AuthenticationError);
    await assert.rejects(sb.files.read("no/such.txt"), FileNotFoundError);
    await assert.rejects(sb.files.getInfo("no/such.txt"), FileNotFoundError);
    await assert.rejects(sb.files.list("no/such"), FileNotFoundError);
  });
}

/** The last flow: kill answers true once, then false. */
export function e2bKill(it: It, ctx: () => { sb: Sandbox }): void {
  it("kills a sandbox: kill answers true once, then false", async () => {
    const { sb } = ctx();
    assert.equal(await sb.kill(), true);
    assert.equal(await Sandbox.kill(sb.sandboxId), false);
    assert.equal(await sb.isRunning(), false);
    await assert.rejects(sb.getInfo(), SandboxNotFoundError);
  });
}
