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
import http from "node:http";
import { ALL_TRAFFIC, CommandExitError, RateLimitError, Sandbox, SandboxError, SandboxNotFoundError } from "e2b";
import { startUpstream, type Upstream } from "../helpers/upstream.js";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { corralCli, spawnCli } from "../helpers/cli.js";
import type { Daemon } from "../../src/server/daemon.js";
import { e2bFlows, e2bKill, until } from "./e2b/flows.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const E2B_VARS = ["E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY", "E2B_DOMAIN", "E2B_DEBUG"];

/** Points E2B's SDK at a daemon the way its docs say to point it at E2B: environment variables only. */
function useDaemon(d: Daemon, key: string): void {
  for (const v of E2B_VARS) delete process.env[v];
  process.env["E2B_API_URL"] = d.e2bUrl;
  process.env["E2B_SANDBOX_URL"] = d.e2bUrl;
  process.env["E2B_API_KEY"] = key;
}

/**
 * Calls of one sandbox's envd Filesystem service as Connect JSON, as E2B's
 * Python SDK makes them: the sandbox's access token (from the sandbox API,
 * with E2B_API_KEY) and the user in Basic auth.
 */
async function filesystemRpc(base: string, sandboxId: string) {
  const detail = await request(base, "GET", `/sandboxes/${sandboxId}`, { headers: { "x-api-key": process.env["E2B_API_KEY"]! } });
  const headers = { "e2b-sandbox-id": sandboxId, "x-access-token": detail.json()["envdAccessToken"] as string, authorization: `Basic ${Buffer.from("user:").toString("base64")}` };
  return (method: string, json: unknown) => request(base, "POST", `/filesystem.Filesystem/${method}`, { headers, json });
}

describe("E2B SDK against corrald", () => {
  let t: TestState;
  let up: Upstream;
  before(async () => {
    // The internet of the egress tests: a namespace of the test's own (198.18.0.0/15) with its DNS zone.
    up = await startUpstream();
    t = await freshState("e2b", { network: { dnsUpstream: [up.dns] } });
    await t.s.store.ensureTemplate("e2b-base");
  });
  after(async () => {
    for (const v of E2B_VARS) delete process.env[v];
    await t?.close();
    await up?.close();
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

    e2bFlows(it, () => ({ sb }));

    it("refuses what corral cannot do with the SDK's own error, naming what is missing", async () => {
      // What corral keeps no memory of: a pause (a 501, not a silent stop).
      await assert.rejects(sb.pause(), (e: unknown) => e instanceof SandboxError && /^501: corral cannot keep a paused sandbox's memory/.test(e.message));
      await assert.rejects(sb.createSnapshot(), (e: unknown) => e instanceof SandboxError && /only microVM sandboxes/.test(e.message));
      await assert.rejects(Sandbox.create({ network: { maskRequestHost: "${PORT}.example.test" } }), (e: unknown) => e instanceof SandboxError && /^501: .*network\.maskRequestHost/.test(e.message));
      await assert.rejects(Sandbox.create({ network: { allowOut: ["198.18.0.1"], denyOut: ["198.18.0.0/15"] } }), (e: unknown) => e instanceof SandboxError && /^501: allowOut as exceptions/.test(e.message));
      await assert.rejects(Sandbox.create({ lifecycle: { onTimeout: "pause" } }), (e: unknown) => e instanceof SandboxError && /^501: .*autoPause/.test(e.message));
      await assert.rejects(sb.updateNetwork({ allowInternetAccess: true }), (e: unknown) => e instanceof SandboxError && /^409: .*made without internet access/.test(e.message));
      // Signed file URLs name no sandbox once E2B_SANDBOX_URL is set (the SDK sends the id as a header only).
      const url = await sb.downloadUrl("notes/a.txt");
      const r = await fetch(url);
      assert.deepEqual([r.status, ((await r.json()) as { message: string }).message], [400, "requests to a sandbox need the E2b-Sandbox-Id header (set by the E2B SDK)"]);
    });

    it("gives internet access as corral's nat network when asked, and none when refused or unsaid", async () => {
      // Only the sandbox's own interfaces and routes are read: no packet is sent anywhere.
      const links = async (s: Sandbox) => (await s.commands.run("ls /sys/class/net; awk '$2 == \"00000000\" { print \"default via\", $1 }' /proc/net/route")).stdout.trim().split("\n");
      const open = await Sandbox.create({ allowInternetAccess: true });
      const closed = await Sandbox.create({ allowInternetAccess: false });
      try {
        assert.equal((await open.getInfo()).allowInternetAccess, true);
        assert.equal(d.sandboxes.record(open.sandboxId, { tenant: "alice" }).spec.network, "nat");
        const l = await links(open);
        assert.ok(l.includes("lo") && l.some((x) => /^default via (?!lo$)/.test(x)), l.join(", "));
        for (const s of [closed, sb]) {
          assert.equal((await s.getInfo()).allowInternetAccess, false);
          assert.deepEqual(await links(s), ["lo"]);
        }
      } finally {
        await open.kill();
        await closed.kill();
      }
    });

    it("maps allowOut and denyOut onto corral's egress policy, at create and by updateNetwork", async () => {
      const fetches = async (s: Sandbox, host: string) => {
        const r = await s.commands.run(`python3 -c "import urllib.request; urllib.request.urlopen('http://${host}/', timeout=3)"`).catch((e: unknown) => e);
        return !(r instanceof CommandExitError);
      };
      const only = await Sandbox.create({ network: { allowOut: ["svc.upstream.test"], denyOut: [ALL_TRAFFIC] } });
      const denied = await Sandbox.create({ network: { denyOut: [`${up.hosts["other.upstream.test"]}/32`] } });
      try {
        assert.equal(await fetches(only, "svc.upstream.test"), true);
        assert.equal(await fetches(only, "www.upstream.test"), false, "a name not allowed");
        assert.equal(await fetches(only, up.hosts["www.upstream.test"]!), false, "an address never resolved through corral");
        assert.deepEqual((await only.getInfo()).network, { allowOut: ["svc.upstream.test"], denyOut: [ALL_TRAFFIC], allowPublicTraffic: undefined, egressProxy: undefined, maskRequestHost: undefined, httpsPorts: undefined, rules: undefined });
        assert.equal(await fetches(denied, "www.upstream.test"), true);
        assert.equal(await fetches(denied, up.hosts["other.upstream.test"]!), false, "denyOut holds");
        // updateNetwork replaces the lists at once, on the running sandbox.
        await only.updateNetwork({ allowOut: ["www.upstream.test"], denyOut: [ALL_TRAFFIC] });
        assert.equal(await fetches(only, "www.upstream.test"), true);
        assert.equal(await fetches(only, "svc.upstream.test"), false);
        await only.updateNetwork({ allowInternetAccess: true });
        assert.equal(await fetches(only, "svc.upstream.test"), true);
        await only.updateNetwork({ allowInternetAccess: false });
        assert.equal(await fetches(only, "svc.upstream.test"), false, "no internet access: nothing out");
      } finally {
        await only.kill();
        await denied.kill();
      }
    });

    it("gives getHost(port) the host of corral's port URL, opened with trafficAccessToken", async () => {
      await sb.files.write("/tmp/www/hello.txt", "hello through the port URL");
      await sb.commands.run("python3 -m http.server 8000 --directory /tmp/www", { background: true });
      const host = sb.getHost(8000);
      // The port URLs are served on corrald's own API port.
      assert.equal(host, `8000-${sb.sandboxId}.localhost:${new URL(d.url).port}`);
      assert.ok(sb.trafficAccessToken, "create answered a traffic token");
      const get = (headers: Record<string, string>) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const port = Number(host.split(":").pop());
          const req = http.get({ host: "127.0.0.1", port, path: "/hello.txt", headers: { host, ...headers } }, (res) => {
            let body = "";
            res.on("data", (c: Buffer) => (body += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on("error", reject);
        });
      // The server may take a moment to listen: 502 until it does.
      let ok = { status: 0, body: "" };
      for (let i = 0; i < 100 && ok.status !== 200; i++) {
        ok = await get({ "e2b-traffic-access-token": sb.trafficAccessToken! });
        if (ok.status !== 200) await sleep(200);
      }
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.body, "hello through the port URL");
      assert.equal((await get({})).status, 401, "without the token");
      assert.equal((await get({ "e2b-traffic-access-token": "x".repeat(32) })).status, 403, "with another token");
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

    it("pages through sandboxes and reports metrics", async () => {
      const other = await Sandbox.create({ metadata: { app: "other" } });
      try {
        const pages = Sandbox.list({ limit: 1 });
        const seen = [...(await pages.nextItems()), ...(await pages.nextItems())].map((s) => s.sandboxId);
        assert.deepEqual(seen.sort(), [sb.sandboxId, other.sandboxId].sort());
        assert.equal(pages.hasNext, false);
      } finally {
        await other.kill();
      }
      const [m] = await sb.getMetrics();
      assert.equal(m?.memTotal, 512 * 1024 * 1024);
      assert.ok((m?.memUsed ?? 0) > 0);
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

    it("hides another tenant's sandbox: it is missing", async () => {
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

    it("serves polled watchers (CreateWatcher, GetWatcherEvents, RemoveWatcher: the Python SDK's watch_dir) as Connect JSON", async () => {
      const rpc = await filesystemRpc(d.e2bUrl!, sb.sandboxId);
      await sb.files.makeDir("polled");
      const made = await rpc("CreateWatcher", { path: "polled", recursive: true });
      assert.equal(made.status, 200, made.text);
      const watcherId = made.json<{ watcherId: string }>().watcherId;
      await sb.files.write("polled/a.txt", "one");
      await sb.files.makeDir("polled/sub");
      await sb.files.write("polled/sub/b.txt", "two");
      const seen: { name: string; type: string }[] = [];
      for (let i = 0; i < 200 && !seen.some((e) => e.name === "sub/b.txt" && e.type === "EVENT_TYPE_CREATE"); i++) {
        const r = await rpc("GetWatcherEvents", { watcherId });
        assert.equal(r.status, 200, r.text);
        seen.push(...(r.json<{ events?: { name: string; type: string }[] }>().events ?? []));
        await sleep(50);
      }
      assert.ok(seen.some((e) => e.name === "a.txt" && e.type === "EVENT_TYPE_CREATE"), JSON.stringify(seen));
      assert.ok(seen.some((e) => e.name === "a.txt" && e.type === "EVENT_TYPE_WRITE"), JSON.stringify(seen));
      assert.ok(seen.some((e) => e.name === "sub/b.txt" && e.type === "EVENT_TYPE_CREATE"), JSON.stringify(seen));
      // Taken once: a poll with nothing new since says nothing.
      assert.deepEqual((await rpc("GetWatcherEvents", { watcherId })).json<{ events?: unknown[] }>().events ?? [], []);
      // Another sandbox's requests do not find it, even with a valid token of their own.
      const other = await Sandbox.create();
      try {
        const r = await (await filesystemRpc(d.e2bUrl!, other.sandboxId))("GetWatcherEvents", { watcherId });
        assert.deepEqual([r.status, r.json()["code"]], [404, "not_found"]);
      } finally {
        await other.kill();
      }
      const missing = await rpc("CreateWatcher", { path: "no-such-dir" });
      assert.deepEqual([missing.status, missing.json()["code"]], [404, "not_found"]);
      assert.equal((await rpc("RemoveWatcher", { watcherId })).status, 200);
      const after = await rpc("GetWatcherEvents", { watcherId });
      assert.deepEqual([after.status, after.json()["code"]], [404, "not_found"]);
      await sb.files.remove("polled");
    });

    it("ends a polled watcher whose events overflowed the sandbox's queue with data_loss, not a silent gap", async () => {
      const rpc = await filesystemRpc(d.e2bUrl!, sb.sandboxId);
      await sb.files.makeDir("flood");
      const watcherId = (await rpc("CreateWatcher", { path: "flood" })).json<{ watcherId: string }>().watcherId;
      // 100,000 events while nobody polls: far more than the watcher keeps (4096), the kernel's queue (16384) and the socket between.
      await sb.commands.run("cd flood && for i in $(seq 50); do seq 1000 | sed \"s/^/f$i-/\" | xargs touch && rm -f f*; done");
      let got = 0;
      let end: { status: number; code?: string } | undefined;
      for (let i = 0; i < 100 && !end; i++) {
        const r = await rpc("GetWatcherEvents", { watcherId });
        if (r.status === 200) got += (r.json<{ events?: unknown[] }>().events ?? []).length;
        else end = { status: r.status, code: r.json()["code"] as string };
      }
      assert.equal(end?.code, "data_loss", `after ${got} events`);
      assert.ok(got < 100_000, `${got} events`);
      assert.equal((await rpc("GetWatcherEvents", { watcherId })).json()["code"], "not_found", "the watcher went with its error");
      await sb.commands.run("rm -rf flood");
    });

    e2bKill(it, () => ({ sb }));
  });

  describe("the daemon", () => {
    it("stops while a client follows a command: the stream ends with an error, the command runs on, and a new corrald reattaches it", async () => {
      const d = await testDaemon(t, { e2b: { listen: { port: 0 } } });
      useDaemon(d, t.s.tenants.createKey("dave").key);
      const sb = await Sandbox.create();
      const h = await sb.commands.run("echo before the restart; sleep 600", { background: true });
      const ended = h.wait().then(
        () => undefined,
        (e: unknown) => e,
      );
      await d.close();
      assert.ok((await ended) instanceof SandboxError);
      const d2 = await testDaemon(t, { e2b: { listen: { port: 0 } } });
      try {
        useDaemon(d2, t.s.tenants.createKey("dave").key);
        const again = await Sandbox.connect(sb.sandboxId);
        // The new corrald never saw the command: the agent lists it, replays what it printed, and kills it.
        const listed = (await again.commands.list()).find((p) => p.pid === h.pid);
        assert.deepEqual(listed && [listed.cmd, listed.args], ["/bin/bash", ["-l", "-c", "echo before the restart; sleep 600"]]);
        let out = "";
        const joined = await again.commands.connect(h.pid, { onStdout: (s) => void (out += s) });
        await until(() => out, (s) => s === "before the restart\n");
        assert.equal(await again.commands.kill(h.pid), true);
        await assert.rejects(joined.wait(), (e: unknown) => e instanceof CommandExitError && e.error === "signal: killed");
        assert.equal(await again.commands.kill(h.pid), false);
        await Sandbox.kill(sb.sandboxId);
      } finally {
        await d2.close();
      }
    });

    it("removes a polled watcher nobody asked for events for within its idle time", async () => {
      const idleMs = 400;
      const d = await testDaemon(t, { e2b: { listen: { port: 0 }, watcherIdleMs: idleMs } });
      try {
        useDaemon(d, t.s.tenants.createKey("fay").key);
        const sb = await Sandbox.create();
        const rpc = await filesystemRpc(d.e2bUrl!, sb.sandboxId);
        const watcherId = (await rpc("CreateWatcher", { path: "/tmp" })).json<{ watcherId: string }>().watcherId;
        assert.equal((await rpc("GetWatcherEvents", { watcherId })).status, 200);
        // Left unpolled for four times its idle time, again until the sweep has run in one such gap: gone.
        let r = await rpc("GetWatcherEvents", { watcherId });
        for (let i = 0; i < 20 && r.status === 200; i++) {
          await sleep(idleMs * 4);
          r = await rpc("GetWatcherEvents", { watcherId });
        }
        assert.deepEqual([r.status, r.json()["code"]], [404, "not_found"]);
        await sb.kill();
      } finally {
        await d.close();
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
    let sb: Sandbox;
    before(async () => {
      d = await testDaemon(t, { e2b: { listen: { port: 0 }, backend: "vm" } });
      useDaemon(d, t.s.tenants.createKey("carol").key);
      sb = await Sandbox.create({ metadata: { app: "e2b-test", run: "1" }, envs: { GREETING: "hello" }, timeoutMs: 600_000 });
    });
    after(async () => d?.close());

    it("runs in a VM: the guest's own kernel", async () => {
      assert.match((await sb.commands.run("uname -r")).stdout, /^\S+cloud-amd64\n$/);
    });

    e2bFlows(it, () => ({ sb }));

    it("snapshots a VM, makes sandboxes of the snapshot, and forks one", async () => {
      await sb.files.write("in-vm/x.txt", "written into a VM");
      const snap = await sb.createSnapshot({ name: "e2b-snap" });
      assert.deepEqual(snap, { snapshotId: "e2b-snap", names: ["e2b-snap"] });
      assert.deepEqual((await sb.listSnapshots().nextItems()).map((s) => s.snapshotId), ["e2b-snap"]);
      const copy = await Sandbox.create("e2b-snap");
      assert.equal(await copy.files.read("in-vm/x.txt"), "written into a VM");
      await copy.kill();
      assert.equal(await Sandbox.deleteSnapshot("e2b-snap"), true);
      assert.equal(await Sandbox.deleteSnapshot("e2b-snap"), false);
      const [fork] = await sb.fork();
      assert.ok(fork instanceof Sandbox);
      assert.equal((await fork.commands.run("cat in-vm/x.txt")).stdout, "written into a VM");
      assert.notEqual(fork.sandboxId, sb.sandboxId);
      await fork.kill();
    });

    e2bKill(it, () => ({ sb }));
  });
});
