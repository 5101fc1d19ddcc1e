// The TypeScript SDK against a real daemon: everything below goes through
// `@corral/sdk` (sdk/src), once as it is by default (creates, gets, kills
// and commands over /v1/connect, the rest over HTTP) and once over HTTP
// only; the daemon's own objects are used only to make tenants and keys,
// as an operator would with the CLI.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { freshState, type TestState } from "../helpers/state.js";
import { testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";
import { dockerArchive, tarArchive } from "../helpers/tar-writer.js";
import {
  AuthError,
  ConflictError,
  ForbiddenError,
  InvalidArgumentError,
  Keys,
  NotFoundError,
  Pools,
  QuotaError,
  Sandbox,
  Snapshots,
  Store,
  Templates,
  Tenants,
  type BuildEvent,
} from "../../sdk/src/index.js";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const transport of ["auto", "http"] as const) describe(`SDK against corrald (${transport === "auto" ? "over /v1/connect where it can" : "over HTTP only"})`, () => {
  let t: TestState;
  let d: Daemon;
  let conn: { apiUrl: string; apiKey: string };
  let sb: Sandbox;

  before(async () => {
    delete process.env["CORRAL_API_KEY"];
    delete process.env["CORRAL_API_URL"];
    // Read by every connection that does not say otherwise (the keys made below too).
    process.env["CORRAL_TRANSPORT"] = transport;
    t = await freshState(`sdk-${transport}`);
    d = await testDaemon(t, { adminTenants: ["ops"], publicMetrics: true });
    conn = { apiUrl: d.url, apiKey: t.s.tenants.createKey("alice").key };
    sb = await Sandbox.create({ ...conn, template: "busybox", envs: { GREETING: "hello" } });
  });
  after(async () => {
    delete process.env["CORRAL_TRANSPORT"];
    await d?.close();
    await t?.close();
  });

  it("creates a running busybox sandbox", async () => {
    assert.match(sb.sandboxId, /^[0-9a-f]{16}$/);
    const info = await sb.info();
    assert.equal(info.sandboxId, sb.sandboxId);
    assert.equal(info.template, "busybox");
    assert.equal(info.status, "running");
    assert.equal(info.spec.env["GREETING"], "hello");
    assert.ok(info.expiresAt !== null, "an ephemeral sandbox has an expiry");
    const again = await Sandbox.connect(sb.sandboxId, conn);
    assert.equal((await again.commands.run("echo $GREETING")).stdout, "hello\n");
  });

  it(transport === "auto" ? "keeps one /v1/connect WebSocket for all of it" : "opens no /v1/connect WebSocket", async () => {
    await sb.commands.run("true");
    const metrics = await (await fetch(`${d.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`^corral_connect_channels ${transport === "auto" ? 1 : 0}$`, "m"));
  });

  it("streams output while the command runs", async () => {
    const seen: { at: number; data: string }[] = [];
    const r = await sb.commands.run("echo first; sleep 1; echo second", { onStdout: (data) => seen.push({ at: Date.now(), data }) });
    const end = Date.now();
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, "first\nsecond\n");
    assert.equal(seen[0]?.data, "first\n");
    assert.ok(end - seen[0].at >= 800, `first output came only ${end - seen[0].at} ms before the end`);
    assert.equal(seen.map((s) => s.data).join(""), r.stdout);
  });

  it("returns exit codes, stderr and signals without throwing", async () => {
    const r = await sb.commands.run("echo out; echo err >&2; exit 7");
    assert.deepEqual(r, { exitCode: 7, stdout: "out\n", stderr: "err\n", signal: null, timedOut: false, oomKilled: false });
    const errs: string[] = [];
    await sb.commands.run("echo oops >&2", { onStderr: (s) => errs.push(s) });
    assert.deepEqual(errs, ["oops\n"]);
    const argv = await sb.commands.run(["/bin/sh", "-c", 'printf "%s|" "$@"', "sh", "a b", "c"]);
    assert.equal(argv.stdout, "a b|c|");
    const killed = await sb.commands.run("kill -9 $$");
    assert.equal(killed.exitCode, null);
    assert.equal(killed.signal, 9);
    const slow = await sb.commands.run("sleep 10", { timeoutMs: 300 });
    assert.equal(slow.timedOut, true);
  });

  it("passes stdin, env, cwd and multibyte output through", async () => {
    assert.equal((await sb.commands.run("cat", { stdin: "héllo €" })).stdout, "héllo €");
    assert.equal((await sb.commands.run("echo $A $(pwd)", { envs: { A: "b" }, cwd: "/tmp" })).stdout, "b /tmp\n");
    // Many euro signs, so some fall across the agent's chunk boundaries.
    const euros = await sb.commands.run("i=0; while [ $i -lt 20000 ]; do printf '\\342\\202\\254'; i=$((i+1)); done");
    assert.equal(euros.stdout, "€".repeat(20000));
  });

  it("round-trips a 10 MiB file with the same sha256", async () => {
    const data = randomBytes(10 * 1024 * 1024);
    async function* chunks() {
      for (let o = 0; o < data.length; o += 1024 * 1024) yield data.subarray(o, o + 1024 * 1024);
    }
    const w = await sb.files.write("/tmp/big/blob.bin", chunks());
    assert.deepEqual(w, { path: "/tmp/big/blob.bin", size: data.length });
    const back = await sb.files.read("/tmp/big/blob.bin", { format: "bytes" });
    assert.equal(back.length, data.length);
    assert.equal(sha256(back), sha256(data));
    const h = createHash("sha256");
    for await (const c of await sb.files.read("/tmp/big/blob.bin", { format: "stream" })) h.update(c);
    assert.equal(h.digest("hex"), sha256(data));
    assert.equal((await sb.commands.run("sha256sum /tmp/big/blob.bin")).stdout.split(" ")[0], sha256(data));
    await sb.files.write("/tmp/big/from-buffer", Buffer.from("buffer"));
    assert.equal(await sb.files.read("/tmp/big/from-buffer"), "buffer");
  });

  it("lists, stats, makes and removes files", async () => {
    await sb.files.makeDir("/tmp/d/e");
    await sb.files.write("/tmp/d/a.txt", "aaa", { mode: 0o600 });
    const entries = await sb.files.list("/tmp/d");
    assert.deepEqual(
      entries.map((e) => [e.name, e.type, e.path]),
      [
        ["a.txt", "file", "/tmp/d/a.txt"],
        ["e", "dir", "/tmp/d/e"],
      ],
    );
    const st = await sb.files.stat("/tmp/d/a.txt");
    assert.equal(st.type, "file");
    assert.equal(st.size, 3);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(await sb.files.exists("/tmp/d/a.txt"), true);
    assert.equal(await sb.files.exists("/tmp/d/nope"), false);
    await assert.rejects(sb.files.read("/tmp/d/nope"), NotFoundError);
    await sb.files.remove("/tmp/d/a.txt");
    assert.equal(await sb.files.exists("/tmp/d/a.txt"), false);
    await sb.files.remove("/tmp/d", { recursive: true });
    assert.equal(await sb.files.exists("/tmp/d"), false);
  });

  it("runs background commands: returns at start, wait, kill", async () => {
    // The command cannot end before /tmp/go exists: no clock decides what is checked.
    const later = await sb.commands.run("while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done > /tmp/bg-done", { background: true, stdin: false });
    assert.ok(later.pid > 0);
    assert.equal(await sb.files.exists("/tmp/bg-done"), false, "background run returns before the command ends");
    let waited = false;
    const ended = later.wait().then((r) => ((waited = true), r));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(waited, false, "wait resolves only once the command ends");
    await sb.files.write("/tmp/go", "");
    assert.equal((await ended).exitCode, 0);
    assert.equal(await sb.files.read("/tmp/bg-done"), "done\n");
    const seven = await sb.commands.run("sleep 0.2; exit 7", { background: true });
    assert.equal((await seven.wait()).exitCode, 7);
    assert.equal(await sb.files.read("/tmp/bg-done"), "done\n");

    const fed = await sb.commands.run("cat > /tmp/bg-fed", { background: true, stdin: "given at start" });
    await fed.wait();
    assert.equal(await sb.files.read("/tmp/bg-fed"), "given at start");

    const forever = await sb.commands.run(["sleep", "1000"], { background: true });
    assert.equal(await forever.kill(), true);
    const killed = await forever.wait();
    assert.deepEqual([killed.exitCode, killed.signal], [null, 9]);
    assert.equal(await forever.kill(), false, "a second kill finds nothing");
  });

  it("feeds a background command's stdin and closes it", async () => {
    const cat = await sb.commands.run("cat > /tmp/bg-in", { background: true });
    await cat.sendStdin("from ");
    await cat.sendStdin(Buffer.from("stdin"));
    await cat.closeStdin();
    await cat.wait();
    assert.equal(await sb.files.read("/tmp/bg-in"), "from stdin");
  });

  it("lists sandboxes filtered by metadata", async () => {
    const suite = randomBytes(4).toString("hex");
    const a = await Sandbox.create({ ...conn, metadata: { suite, role: "a" } });
    const b = await Sandbox.create({ ...conn, metadata: { suite, role: "b" } });
    try {
      const onlyA = await Sandbox.list({ ...conn, metadata: { suite, role: "a" } });
      assert.deepEqual(
        onlyA.map((s) => s.sandboxId),
        [a.sandboxId],
      );
      assert.deepEqual(onlyA[0]?.metadata, { suite, role: "a" });
      const both = await Sandbox.list({ ...conn, metadata: { suite } });
      assert.deepEqual(both.map((s) => s.sandboxId).sort(), [a.sandboxId, b.sandboxId].sort());
      const all = await Sandbox.list(conn);
      assert.ok(all.some((s) => s.sandboxId === sb.sandboxId));
    } finally {
      await a.kill();
      await b.kill();
    }
  });

  it("removes a sandbox when the timeout set with setTimeout passes", async () => {
    const s = await Sandbox.create(conn);
    const before = Date.now();
    const info = await s.setTimeout(2000);
    const after = Date.now();
    // 2 s from when the daemon took the call, which was between before and after (whole seconds: ±1 s).
    const expires = Date.parse(info.expiresAt ?? "");
    assert.ok(expires >= before + 2000 - 1000 && expires <= after + 2000 + 1000, `expiresAt ${info.expiresAt}, called ${new Date(before).toISOString()}..${new Date(after).toISOString()}`);
    // Not removed before its time (checked at once: a loaded host may take any time to get here).
    assert.equal((await s.info()).status, "running");
    let gone = false;
    while (!gone && Date.now() - before < 30_000) {
      try {
        await Sandbox.connect(s.sandboxId, conn);
        await sleep(200);
      } catch (e) {
        assert.ok(e instanceof NotFoundError, String(e));
        gone = true;
      }
    }
    assert.ok(gone, "still there 30 s after a 2 s timeout");
    await assert.rejects(s.info(), NotFoundError);
  });

  it("promotes an ephemeral sandbox to persistent, keeping its files", async () => {
    const s = await Sandbox.create({ ...conn, timeoutMs: 60_000 });
    try {
      assert.notEqual((await s.info()).expiresAt, null);
      await s.files.write("/root-note.txt", "kept");
      const promoted = await s.promote();
      assert.equal(promoted.expiresAt, null);
      const info = await s.info();
      assert.equal(info.expiresAt, null);
      assert.equal(info.spec.lifetime.mode, "persistent");
      assert.equal(await s.files.read("/root-note.txt"), "kept");
      assert.notEqual((await s.setTimeout(60_000)).expiresAt, null);
      assert.equal((await s.setTimeout(null)).expiresAt, null);
    } finally {
      await s.kill();
    }
  });

  it("stops a persistent sandbox and starts it again with its disk", async () => {
    const s = await Sandbox.create({ ...conn, persistent: true, name: "pet" });
    try {
      await s.files.write("/work/kept.txt", "survives a stop");
      await s.commands.run("sleep 1000 &", { background: true });
      const stopped = await s.stop();
      assert.equal(stopped.status, "stopped");
      await assert.rejects(s.commands.run("true"), ConflictError);
      const started = await s.start();
      assert.equal(started.status, "running");
      assert.equal(await s.files.read("/work/kept.txt"), "survives a stop");
      const ps = await s.commands.run("ps -o comm | grep -c sleep || true");
      assert.equal(ps.stdout.trim(), "0");
      // A sandbox whose files live in memory is not stopped.
      const cattle = await Sandbox.create({ ...conn });
      await s.promote();
      await cattle.promote();
      await assert.rejects(cattle.stop(), ConflictError);
      await cattle.kill();
    } finally {
      await s.kill();
    }
  });

  it("reports a sandbox's usage from its cgroups", async () => {
    const s = await Sandbox.create({ ...conn, resources: { memory: "64M" } });
    try {
      await s.commands.run("dd if=/dev/zero of=/dev/null bs=200M count=1");
      const st = await s.stats();
      assert.ok(st.pids >= 1 && st.memoryBytes > 0 && st.cpuNanos > 0, JSON.stringify(st));
      assert.equal(st.oomKills, 1);
    } finally {
      await s.kill();
    }
  });

  it("kills a sandbox", async () => {
    const s = await Sandbox.create({ ...conn, name: "to-kill" });
    assert.equal((await Sandbox.getInfo("to-kill", conn)).sandboxId, s.sandboxId);
    assert.equal(await s.kill(), true);
    await assert.rejects(s.info(), NotFoundError);
    await assert.rejects(Sandbox.connect(s.sandboxId, conn), NotFoundError);
    await assert.rejects(s.commands.run("true"), NotFoundError);
    assert.equal(await Sandbox.kill(s.sandboxId, conn), false);
  });

  it("takes the URL and key from CORRAL_API_URL / CORRAL_API_KEY", async () => {
    process.env["CORRAL_API_URL"] = conn.apiUrl;
    process.env["CORRAL_API_KEY"] = conn.apiKey;
    try {
      const list = await Sandbox.list();
      assert.ok(list.some((s) => s.sandboxId === sb.sandboxId));
    } finally {
      delete process.env["CORRAL_API_URL"];
      delete process.env["CORRAL_API_KEY"];
    }
  });

  it("changes what tenants share with an admin tenant's key only: pools, store, tenants, keys", async () => {
    const admin = { apiUrl: conn.apiUrl, apiKey: t.s.tenants.createKey("ops").key };
    // Every tenant may look; only an admin tenant may change.
    assert.ok((await Templates.list(conn)).some((x) => x.name === "busybox" && x.built));
    for (const call of [
      () => Pools.set({ template: "busybox", size: 1 }, conn),
      () => Pools.remove("0123456789abcdef", conn),
      () => Store.usage(conn),
      () => Store.gc(conn),
      () => Tenants.list(conn),
      () => Tenants.setQuota("alice", { maxSandboxes: 100 }, conn),
      () => Keys.create("alice", conn),
      () => Keys.list(conn),
      () => Keys.revoke("000000000000", conn),
      () => Templates.remove("busybox", conn),
    ]) {
      await assert.rejects(call(), (e: unknown) => e instanceof ForbiddenError && e.status === 403 && e.code === "forbidden" && /--admin-tenant/.test(e.message));
    }

    const pool = await Pools.set({ template: "busybox", size: 1, resources: { memory: "64M" } }, admin);
    assert.deepEqual([pool.template, pool.target, pool.resources.memory], ["busybox", 1, 64 * 1024 * 1024]);
    assert.ok((await Pools.list(conn)).some((p) => p.key === pool.key));
    await Pools.remove(pool.key, admin);
    assert.equal((await Pools.list(conn)).find((p) => p.key === pool.key)?.target, 0);

    const made = await Tenants.setQuota("team", { maxSandboxes: 2, maxMemory: "1G" }, admin);
    assert.deepEqual([made.name, made.maxSandboxes, made.maxMemory], ["team", 2, 1024 ** 3]);
    const changed = await Tenants.setQuota("team", { maxSandboxes: null }, admin);
    assert.deepEqual([changed.maxSandboxes, changed.maxMemory], [null, 1024 ** 3]);
    assert.ok((await Tenants.list(admin)).some((x) => x.name === "team"));
    const k = await Keys.create("team", admin);
    assert.match(k.key, /^crl_/);
    assert.equal((await Sandbox.list({ apiUrl: conn.apiUrl, apiKey: k.key })).length, 0);
    assert.deepEqual((await Keys.list({ ...admin, tenant: "team" })).map((x) => [x.id, x.revokedAt]), [[k.id, null]]);
    await Keys.revoke(k.id, admin);
    await assert.rejects(Sandbox.list({ apiUrl: conn.apiUrl, apiKey: k.key }), AuthError);

    const du = await Store.usage(admin);
    assert.ok(du.layers.some((l) => l.templates.includes("busybox")) && du.sharedBytes > 0, JSON.stringify(du).slice(0, 300));
    const gc = await Store.gc(admin);
    assert.ok(Array.isArray(gc.removed) && gc.freedBytes >= 0);
  });

  it("commits a persistent sandbox as a template; builds, imports and removes templates", async () => {
    const admin = { apiUrl: conn.apiUrl, apiKey: t.s.tenants.createKey("ops").key };
    const name = `from-pet-${transport}`;
    const mine = await Sandbox.create({ ...conn, persistent: true });
    await assert.rejects(mine.commit(name), ForbiddenError);
    await mine.kill();
    const pet = await Sandbox.create({ ...admin, persistent: true });
    try {
      await pet.files.write("/etc/committed", "yes\n");
      const template = await pet.commit(name);
      assert.deepEqual([template.name, template.built], [name, true]);
      assert.equal((await pet.info()).status, "running", "started again after the copy");
      const child = await Sandbox.create({ ...conn, template: name });
      assert.equal(await child.files.read("/etc/committed"), "yes\n");
      await child.kill();
      await assert.rejects(pet.commit(name), ConflictError);
    } finally {
      await pet.kill();
    }
    await Templates.remove(name, admin);
    assert.ok(!(await Templates.list(conn)).some((x) => x.name === name));
    await assert.rejects(Templates.remove(name, admin), NotFoundError);

    const built = await Templates.build("busybox", conn);
    assert.deepEqual([built.name, built.built], ["busybox", true]);

    const archive = dockerArchive([tarArchive([{ name: "etc/", type: "dir" }, { name: "etc/from-sdk", data: "x\n" }])]);
    await assert.rejects(Templates.import(`sdk-import-${transport}`, archive, conn), ForbiddenError);
    const seen: BuildEvent[] = [];
    const imported = await Templates.import(`sdk-import-${transport}`, archive, { ...admin, onProgress: (e) => void seen.push(e) });
    assert.deepEqual([imported.name, imported.built, imported.layers?.length], [`sdk-import-${transport}`, true, 1]);
    assert.ok(seen.some((e) => e.phase === "layer"), JSON.stringify(seen));
    await Templates.remove(`sdk-import-${transport}`, admin);
  });

  it("snapshots microVM sandboxes only, and lists the tenant's snapshots", async () => {
    await assert.rejects(sb.snapshot("snap"), ConflictError);
    assert.deepEqual(await Snapshots.list(conn), []);
    await assert.rejects(Snapshots.remove("nope", conn), NotFoundError);
  });

  describe("errors", () => {
    it("AuthError without a key, before any request", async () => {
      await assert.rejects(Sandbox.create({ apiUrl: conn.apiUrl }), (e: unknown) => e instanceof AuthError && e.code === "missing_api_key");
      await assert.rejects(Sandbox.connect(sb.sandboxId, { apiUrl: "http://127.0.0.1:9" }), AuthError);
    });

    it("AuthError for a wrong key", async () => {
      const wrong = { apiUrl: conn.apiUrl, apiKey: `crl_000000000000_${"A".repeat(43)}` };
      await assert.rejects(Sandbox.list(wrong), (e: unknown) => e instanceof AuthError && e.status === 401 && e.code === "unauthorized");
      await assert.rejects(Sandbox.connect(sb.sandboxId, { ...wrong, apiKey: "not-a-key" }), AuthError);
      await assert.rejects(Sandbox.create(wrong), AuthError);
    });

    it("NotFoundError for another tenant's sandbox, which stays untouched", async () => {
      const bob = { apiUrl: conn.apiUrl, apiKey: t.s.tenants.createKey("bob").key };
      await assert.rejects(Sandbox.connect(sb.sandboxId, bob), (e: unknown) => e instanceof NotFoundError && e.status === 404);
      await assert.rejects(Sandbox.getInfo(sb.sandboxId, bob), NotFoundError);
      assert.equal(await Sandbox.kill(sb.sandboxId, bob), false);
      assert.equal((await Sandbox.list(bob)).length, 0);
      assert.equal((await sb.info()).status, "running");
    });

    it("InvalidArgumentError naming the bad field of a spec", async () => {
      await assert.rejects(
        Sandbox.create({ ...conn, resources: { memory: "lots" } }),
        (e: unknown) => e instanceof InvalidArgumentError && e.status === 400 && /resources\.memory/.test(e.message),
      );
      await assert.rejects(Sandbox.create({ ...conn, template: "no-such-template" }), (e: unknown) => e instanceof NotFoundError || e instanceof InvalidArgumentError);
    });

    it("says what was wrong in the SDK's own terms", async () => {
      await assert.rejects(Sandbox.connect("0123456789abcdef", conn), (e: unknown) => e instanceof NotFoundError && e.message === 'no sandbox with id "0123456789abcdef"');
      await assert.rejects(
        sb.files.read("etc/passwd"),
        (e: unknown) => e instanceof InvalidArgumentError && e.message === 'files.read: the path must be absolute, inside the sandbox (start with "/"), got "etc/passwd"',
      );
      await assert.rejects(sb.files.write("x", "y"), /files\.write: the path must be absolute/);
    });

    it("QuotaError when a tenant is over its sandbox quota", async () => {
      t.s.tenants.create("small", { maxSandboxes: 1 });
      const small = { apiUrl: conn.apiUrl, apiKey: t.s.tenants.createKey("small").key };
      const first = await Sandbox.create(small);
      try {
        await assert.rejects(
          Sandbox.create(small),
          (e: unknown) => e instanceof QuotaError && e.status === 429 && e.code === "quota_exceeded" && e.over?.quota === "sandboxes" && e.over.limit === 1,
        );
      } finally {
        await first.kill();
      }
      const again = await Sandbox.create(small);
      await again.kill();
    });
  });
});
