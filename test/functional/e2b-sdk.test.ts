// E2B's own SDK (the `e2b` package, unmodified, a dev dependency) against a
// real corrald with its E2B listener on: nothing is configured but what a
// user of E2B would set, E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY (a
// corral API key). Containers get the whole of what corral serves; a
// microVM daemon on the same state dir a representative subset (boots are
// slow under TCG) plus what only VMs can do (snapshots, fork). The daemon's
// own objects only make tenants and keys and build e2b-base first, as an
// operator would with `corral template build e2b-base`.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  AuthenticationError,
  CommandExitError,
  FileNotFoundError,
  RateLimitError,
  Sandbox,
  SandboxError,
  SandboxNotFoundError,
  TimeoutError,
} from "e2b";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { corralCli, spawnCli } from "../helpers/cli.js";
import type { Daemon } from "../../src/server/daemon.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const E2B_VARS = ["E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY", "E2B_DOMAIN", "E2B_DEBUG"];

/** Points E2B's SDK at a daemon the way its docs say to point it at E2B: environment variables only. */
function useDaemon(d: Daemon, key: string): void {
  for (const v of E2B_VARS) delete process.env[v];
  process.env["E2B_API_URL"] = d.e2bUrl;
  process.env["E2B_SANDBOX_URL"] = d.e2bUrl;
  process.env["E2B_API_KEY"] = key;
}

/** Resolves when `pred` holds of what `get` gives, polling (no time is asserted). */
async function until(get: () => string, pred: (s: string) => boolean): Promise<void> {
  while (!pred(get())) await sleep(20);
}

describe("E2B SDK against corrald", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("e2b");
    await t.s.store.ensureTemplate("e2b-base");
  });
  after(async () => {
    for (const v of E2B_VARS) delete process.env[v];
    await t?.close();
  });

  describe("containers", () => {
    let d: Daemon;
    let sb: Sandbox;
    before(async () => {
      d = await testDaemon(t, { e2b: { listen: { port: 0 } } });
      useDaemon(d, t.s.tenants.createKey("alice").key);
      sb = await Sandbox.create({ metadata: { app: "e2b-test", run: "1" }, envs: { GREETING: "hello" }, timeoutMs: 600_000 });
    });
    after(async () => d?.close());

    it("creates a sandbox of E2B's default template, with its metadata, envs and timeout", async () => {
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
      await assert.rejects(sb.commands.run("echo out; echo err >&2; exit 3"), (e: unknown) => {
        assert.ok(e instanceof CommandExitError);
        assert.deepEqual([e.exitCode, e.stdout, e.stderr, e.error], [3, "out\n", "err\n", "exit status 3"]);
        return true;
      });
    });

    it("runs a command in the background, lists it, kills it, and wait reports the kill", async () => {
      const h = await sb.commands.run("sleep 600", { background: true, cwd: "/tmp", envs: { MARK: "x" } });
      const listed = (await sb.commands.list()).find((p) => p.pid === h.pid);
      assert.deepEqual(listed && [listed.cmd, listed.args, listed.envs, listed.cwd], ["/bin/bash", ["-l", "-c", "sleep 600"], { MARK: "x" }, "/tmp"]);
      assert.equal(await h.kill(), true);
      await assert.rejects(h.wait(), (e: unknown) => e instanceof CommandExitError && e.exitCode === -1 && e.error === "signal: killed");
      assert.ok(!(await sb.commands.list()).some((p) => p.pid === h.pid));
      assert.equal(await sb.commands.kill(h.pid), false);
    });

    it("sends stdin to a command and closes it", async () => {
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

    it("connects to a running command and follows its output from then on", async () => {
      const h = await sb.commands.run("for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.2; done", { background: true });
      let first = "";
      await h.disconnect();
      const again = await sb.commands.connect(h.pid, { onStdout: (s) => void (first += s) });
      const r = await again.wait();
      assert.equal(r.exitCode, 0);
      assert.match(first, /tick 8\n$/);
      await assert.rejects(sb.commands.connect(h.pid), SandboxError);
    });

    it("ends a command at its timeoutMs with E2B's TimeoutError, and the command with it", async () => {
      await assert.rejects(sb.commands.run("sleep 600; echo never", { timeoutMs: 1000 }), TimeoutError);
      while ((await sb.commands.list()).some((p) => p.args.includes("sleep 600; echo never"))) await sleep(50);
    });

    it("writes files: a string, bytes, a stream, gzip'ed, and many at once, owned by the user", async () => {
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

    it("lists, checks, makes, describes and removes", async () => {
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
      await sb.files.remove("made");
      assert.equal(await sb.files.exists("made"), false);
      await sb.files.remove("made"); // gone already: as envd's RemoveAll, not an error
    });

    it("throws FileNotFoundError for a file that does not exist", async () => {
      await assert.rejects(sb.files.read("no/such.txt"), FileNotFoundError);
      await assert.rejects(sb.files.getInfo("no/such.txt"), FileNotFoundError);
      await assert.rejects(sb.files.list("no/such"), FileNotFoundError);
    });

    it("refuses what corral's agent cannot do yet with the SDK's own error, naming what is missing", async () => {
      for (const p of [
        sb.files.rename("notes/a.txt", "notes/b.txt"),
        sb.files.watchDir("notes", () => {}),
        sb.pty.create({ cols: 80, rows: 24, onData: () => {} }),
      ]) {
        await assert.rejects(p, (e: unknown) => e instanceof SandboxError && /unimplemented/.test(e.message) && /corral's agent/.test(e.message));
      }
      // And what corral keeps no memory of: a pause (a 501, not a silent stop).
      await assert.rejects(sb.pause(), (e: unknown) => e instanceof SandboxError && /^501: corral cannot keep a paused sandbox's memory/.test(e.message));
      await assert.rejects(sb.createSnapshot(), (e: unknown) => e instanceof SandboxError && /only microVM sandboxes/.test(e.message));
      await assert.rejects(Sandbox.create({ allowInternetAccess: true }), (e: unknown) => e instanceof SandboxError && /^501: .*allow_internet_access/.test(e.message));
      await assert.rejects(Sandbox.create({ lifecycle: { onTimeout: "pause" } }), (e: unknown) => e instanceof SandboxError && /^501: .*autoPause/.test(e.message));
      await assert.rejects(sb.updateNetwork({ allowInternetAccess: true }), (e: unknown) => e instanceof SandboxError && /^501: corral sandboxes have no network/.test(e.message));
      // Signed file URLs name no sandbox once E2B_SANDBOX_URL is set (the SDK sends the id as a header only).
      const url = await sb.downloadUrl("notes/a.txt");
      const r = await fetch(url);
      assert.deepEqual([r.status, ((await r.json()) as { message: string }).message], [400, "requests to a sandbox need the E2b-Sandbox-Id header (set by the E2B SDK)"]);
    });

    it("runs the SDK's (deprecated) git module locally: it is git through commands.run", async () => {
      await sb.git.init("repo", { initialBranch: "main" });
      await sb.git.configureUser("Corral", "corral@localhost", { scope: "local", path: "repo" });
      await sb.files.write("repo/README", "hi");
      await sb.git.add("repo");
      await sb.git.commit("repo", "first");
      const st = await sb.git.status("repo");
      assert.deepEqual([st.currentBranch, st.fileStatus.length], ["main", 0]);
      assert.deepEqual((await sb.git.branches("repo")).branches, ["main"]);
    });

    it("lists sandboxes by metadata, sets a timeout, reports metrics and connects again", async () => {
      const other = await Sandbox.create({ metadata: { app: "other" } });
      try {
        const mine = await Sandbox.list({ query: { metadata: { app: "e2b-test" } } }).nextItems();
        assert.deepEqual(mine.map((s) => s.sandboxId), [sb.sandboxId]);
        const pages = Sandbox.list({ limit: 1 });
        const seen = [...(await pages.nextItems()), ...(await pages.nextItems())].map((s) => s.sandboxId);
        assert.deepEqual(seen.sort(), [sb.sandboxId, other.sandboxId].sort());
        assert.equal(pages.hasNext, false);
      } finally {
        await other.kill();
      }
      await sb.setTimeout(900_000);
      const info = await Sandbox.getInfo(sb.sandboxId);
      assert.ok(Math.abs(info.endAt.getTime() - Date.now() - 900_000) < 60_000, `endAt ${info.endAt.toISOString()}`);
      const [m] = await sb.getMetrics();
      assert.equal(m?.memTotal, 512 * 1024 * 1024);
      assert.ok((m?.memUsed ?? 0) > 0);
      const again = await Sandbox.connect(sb.sandboxId);
      assert.equal((await again.commands.run("cat notes/a.txt")).stdout, "alpha");
      assert.equal(await again.isRunning(), true);
    });

    it("pauses only without memory, and only a persistent sandbox; connect starts it again from its disk", async () => {
      await assert.rejects(sb.pause({ keepMemory: false }), (e: unknown) => e instanceof SandboxError && /^501: .*keeps its files in memory/.test(e.message));
      // A pet made through corral's own API, in the same tenant.
      const pet = await t.s.create({ template: "e2b-base", lifetime: { mode: "persistent" } }, { tenant: "alice" });
      const p = await Sandbox.connect(pet.id);
      await p.files.write("kept.txt", "on disk");
      assert.equal(await Sandbox.pause(pet.id, { keepMemory: false }), true);
      assert.equal(await Sandbox.pause(pet.id, { keepMemory: false }), false);
      assert.equal((await Sandbox.getInfo(pet.id)).state, "paused");
      assert.deepEqual((await Sandbox.list({ query: { state: ["paused"] } }).nextItems()).map((s) => s.sandboxId), [pet.id]);
      await assert.rejects(Sandbox.connect(pet.id), (e: unknown) => e instanceof SandboxError && /^501: .*onResume "reboot"/.test(e.message));
      const back = await Sandbox.connect(pet.id, { onResume: "reboot" });
      assert.equal(await back.files.read("kept.txt"), "on disk");
      assert.equal((await Sandbox.getInfo(pet.id)).state, "running");
      assert.equal(await back.kill(), true);
    });

    it("claims a sandbox from a warm pool of e2b-base, with its own envs and metadata", async () => {
      const pool = d.sandboxes.pools.set("e2b-base", {}, 1);
      try {
        while ((d.sandboxes.pools.list().find((p) => p.key === pool.key)?.ready ?? 0) < 1) await sleep(100);
        const claimed = await Sandbox.create({ envs: { CLAIMED: "yes" }, metadata: { pooled: "1" } });
        assert.equal(d.sandboxes.pools.list().find((p) => p.key === pool.key)?.hits, 1);
        assert.equal((await claimed.commands.run("echo $CLAIMED; id -un")).stdout, "yes\nuser\n");
        assert.deepEqual((await claimed.getInfo()).metadata, { pooled: "1" });
        await claimed.kill();
      } finally {
        d.sandboxes.pools.set("e2b-base", {}, 0);
      }
    });

    it("removes a sandbox at its timeout", async () => {
      const brief = await Sandbox.create({ timeoutMs: 1000 });
      while (await brief.isRunning()) await sleep(100);
      await assert.rejects(brief.getInfo(), SandboxNotFoundError);
      await assert.rejects(brief.commands.run("true"), SandboxNotFoundError);
    });

    it("raises the SDK's errors for a missing sandbox and a wrong key; another tenant's is missing too", async () => {
      await assert.rejects(Sandbox.getInfo("0123456789abcdef"), SandboxNotFoundError);
      await assert.rejects(Sandbox.connect("0123456789abcdef"), SandboxNotFoundError);
      await assert.rejects(Sandbox.setTimeout("0123456789abcdef", 10_000), SandboxNotFoundError);
      assert.equal(await Sandbox.kill("0123456789abcdef"), false);
      await assert.rejects(Sandbox.create({ apiKey: "crl_0123456789abcdef_nope" }), AuthenticationError);
      await assert.rejects(Sandbox.list({ apiKey: "crl_0123456789abcdef_nope" }).nextItems(), AuthenticationError);
      const bob = t.s.tenants.createKey("bob").key;
      await assert.rejects(Sandbox.getInfo(sb.sandboxId, { apiKey: bob }), SandboxNotFoundError);
      assert.deepEqual(await Sandbox.list({ apiKey: bob }).nextItems(), []);
    });

    it("applies the tenant's quota (E2B's 429: RateLimitError)", async () => {
      t.s.tenants.create("capped", { maxSandboxes: 1 });
      const key = t.s.tenants.createKey("capped").key;
      const first = await Sandbox.create({ apiKey: key });
      try {
        await assert.rejects(Sandbox.create({ apiKey: key }), RateLimitError);
      } finally {
        await first.kill();
      }
    });

    it("guards the sandbox's daemon API with its access token, and says 502 once it is gone", async () => {
      const base = d.e2bUrl!;
      const headers = { "e2b-sandbox-id": sb.sandboxId };
      const noToken = await request(base, "GET", "/files?path=notes/a.txt", { headers });
      assert.deepEqual([noToken.status, noToken.json()["code"]], [401, 401]);
      const wrong = await request(base, "GET", "/health", { headers: { ...headers, "x-access-token": "x".repeat(43) } });
      assert.equal(wrong.status, 401);
      // One sandbox's token opens no other sandbox, even of the same tenant.
      const other = await Sandbox.create();
      try {
        const detail = await request(base, "GET", `/sandboxes/${sb.sandboxId}`, { headers: { "x-api-key": process.env["E2B_API_KEY"]! } });
        const token = detail.json()["envdAccessToken"] as string;
        assert.equal((await request(base, "GET", "/health", { headers: { ...headers, "x-access-token": token } })).status, 204);
        assert.equal((await request(base, "GET", "/health", { headers: { "e2b-sandbox-id": other.sandboxId, "x-access-token": token } })).status, 401);
      } finally {
        await other.kill();
      }
      const gone = await request(base, "GET", "/health", { headers: { "e2b-sandbox-id": "0123456789abcdef" } });
      assert.deepEqual([gone.status, gone.json()["code"]], [502, 502]);
      const route = await request(base, "GET", "/v1/sandboxes");
      assert.equal(route.status, 404);
    });

    it("kills a sandbox: kill answers true once, then false", async () => {
      assert.equal(await sb.kill(), true);
      assert.equal(await Sandbox.kill(sb.sandboxId), false);
      assert.equal(await sb.isRunning(), false);
    });
  });

  describe("the daemon", () => {
    it("stops while a client follows a command: the stream ends with an error, the command runs on", async () => {
      const d = await testDaemon(t, { e2b: { listen: { port: 0 } } });
      useDaemon(d, t.s.tenants.createKey("dave").key);
      const sb = await Sandbox.create();
      const h = await sb.commands.run("sleep 600", { background: true });
      const ended = h.wait().then(
        () => undefined,
        (e: unknown) => e,
      );
      await d.close();
      assert.ok((await ended) instanceof SandboxError);
      let ps = "";
      const r = await t.s.exec(sb.sandboxId, { cmd: "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done" }, { onStdout: (b) => void (ps += b.toString()) });
      assert.equal(r.exitCode, 0);
      // bash -c execs its last command: sleep, or bash still on its way there.
      assert.match(ps, /^(\/bin\/bash -l -c )?sleep 600 $/m);
      const d2 = await testDaemon(t, { e2b: { listen: { port: 0 } } });
      try {
        useDaemon(d2, t.s.tenants.createKey("dave").key);
        await Sandbox.kill(sb.sandboxId);
      } finally {
        await d2.close();
      }
    });

    it("serves E2B only when `corral daemon --e2b-listen` asks, and refuses a backend it does not know", async () => {
      const bad = await corralCli(t, "daemon", "--listen", "127.0.0.1:0", "--e2b-listen", "127.0.0.1:0", "--e2b-backend", "lxc");
      assert.equal(bad.code, 1);
      assert.match(bad.stderr.trim(), /^corral: .*--e2b-backend must be container, vm or gvisor, got "lxc"$/);
      const c = spawnCli(["--state-dir", t.stateDir, "daemon", "--listen", "127.0.0.1:0", "--e2b-listen", "127.0.0.1:0"], { CORRAL_CGROUP_PARENT: t.cgroupParent });
      try {
        let out = "";
        c.stdout.on("data", (b: Buffer) => (out += b.toString()));
        await until(() => out, (s) => s.includes("E2B API on "));
        const url = /E2B API on (http:\/\/\S+)/.exec(out)![1]!;
        const r = await request(url, "GET", "/v2/sandboxes", { headers: { "x-api-key": t.s.tenants.createKey("erin").key } });
        assert.deepEqual([r.status, r.json()], [200, []]);
      } finally {
        c.kill("SIGTERM");
        await new Promise((r) => c.once("close", r));
      }
    });
  });

  describe("microVMs", () => {
    let d: Daemon;
    let vm: Sandbox;
    before(async () => {
      d = await testDaemon(t, { e2b: { listen: { port: 0 }, backend: "vm" } });
      useDaemon(d, t.s.tenants.createKey("carol").key);
      vm = await Sandbox.create({ envs: { WHERE: "vm" }, metadata: { kind: "vm" } });
    });
    after(async () => d?.close());

    it("runs commands and files in a VM of E2B's default template", async () => {
      let out = "";
      const r = await vm.commands.run("echo $WHERE $(id -un) $(uname -r)", { onStdout: (s) => void (out += s) });
      assert.match(r.stdout, /^vm user \S+cloud-amd64\n$/);
      assert.equal(out, r.stdout);
      await assert.rejects(vm.commands.run("exit 7"), (e: unknown) => e instanceof CommandExitError && e.exitCode === 7);
      await vm.files.write("in-vm/x.txt", "written into a VM");
      assert.equal(await vm.files.read("in-vm/x.txt"), "written into a VM");
      assert.deepEqual((await vm.files.list("in-vm")).map((e) => [e.name, e.owner]), [["x.txt", "user"]]);
      assert.equal((await Sandbox.getInfo(vm.sandboxId)).metadata["kind"], "vm");
    });

    it("snapshots a VM, makes sandboxes of the snapshot, and forks one", async () => {
      const snap = await vm.createSnapshot({ name: "e2b-snap" });
      assert.deepEqual(snap, { snapshotId: "e2b-snap", names: ["e2b-snap"] });
      assert.deepEqual((await vm.listSnapshots().nextItems()).map((s) => s.snapshotId), ["e2b-snap"]);
      const copy = await Sandbox.create("e2b-snap");
      assert.equal(await copy.files.read("in-vm/x.txt"), "written into a VM");
      await copy.kill();
      assert.equal(await Sandbox.deleteSnapshot("e2b-snap"), true);
      assert.equal(await Sandbox.deleteSnapshot("e2b-snap"), false);
      const [fork] = await vm.fork();
      assert.ok(fork instanceof Sandbox);
      assert.equal((await fork.commands.run("cat in-vm/x.txt")).stdout, "written into a VM");
      assert.notEqual(fork.sandboxId, vm.sandboxId);
      await fork.kill();
    });

    it("kills the VM", async () => {
      assert.equal(await vm.kill(), true);
      await assert.rejects(vm.getInfo(), SandboxNotFoundError);
    });
  });
});
