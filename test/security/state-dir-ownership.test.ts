// Threat: one state dir's daemon or CLI destroying another's sandboxes
// (issue 18: two state dirs shared the cgroup parent `corral`, and opening
// either, even for `corral admin key create`, destroyed 20 of 20 of the
// other's), and two daemons serving one state dir. Each state dir now
// owns a cgroup parent derived from it; a daemon holds its state dir's
// lock. Both backends: a VM's cgroup lives under the same parent. A CLI
// given a served state dir acts through its daemon, with the operator
// credential the daemon keeps beside its record for as long as it runs.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Sandboxes } from "../../src/runtime/sandboxes.js";
import { derivedCgroupParent } from "../../src/runtime/open-state-dir.js";
import { spawnDaemon } from "../../src/server/spawn.js";
import { removeEmptyParent } from "../../src/host/cgroups.js";
import { UID_RANGE } from "../../src/runtime/uid-ranges.js";
import { findLeaks } from "../helpers/leaks.js";
import { request } from "../helpers/daemon.js";
import { CLI } from "../helpers/cli.js";

/** No cgroup parent from the environment: each state dir's default is the point. */
const DEFAULT_ENV = { CORRAL_CGROUP_PARENT: undefined, CORRAL_API_URL: "" };

interface Side {
  readonly base: string;
  readonly stateDir: string;
  key: string;
  daemon?: { proc: ChildProcess; url: string };
  ids: string[];
}

async function newSide(label: string): Promise<Side> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), `corral-own-${label}-`));
  await fsp.chmod(base, 0o711);
  return { base, stateDir: path.join(base, "state"), key: "", ids: [] };
}

/** The loader hook that logs every module a process loads (test/helpers/module-log.ts). */
const MODULE_LOG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../helpers/module-log.js");

function run(args: string[], moduleLog?: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const node = moduleLog ? ["--import", MODULE_LOG] : [];
    const env = { ...process.env, ...DEFAULT_ENV, ...(moduleLog ? { CORRAL_MODULE_LOG: moduleLog } : {}), ...extraEnv };
    const c = spawn(process.execPath, [...node, CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    c.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    c.on("error", reject);
    c.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function stopDaemon(s: Side): Promise<void> {
  const d = s.daemon;
  if (!d) return;
  const gone = new Promise((r) => d.proc.once("exit", r));
  d.proc.kill("SIGKILL");
  await gone;
  delete s.daemon;
}

describe("state dir ownership", () => {
  const a: Side[] = [];
  before(async () => {
    a.push(await newSide("a"), await newSide("b"));
    for (const s of a) {
      const k = await run(["--state-dir", s.stateDir, "admin", "key", "create", "--tenant", "owner"]);
      assert.equal(k.code, 0, k.stderr);
      s.key = k.stdout.trim().split(/\s+/).find((w) => w.startsWith("crl_")) ?? "";
      assert.ok(s.key, k.stdout);
    }
  });
  after(async () => {
    for (const s of a) {
      await stopDaemon(s);
      const sb = await Sandboxes.open({ stateDir: s.stateDir, cgroupParent: derivedCgroupParent(s.stateDir) });
      for (const x of await sb.list()) await sb.destroy(x.id).catch(() => {});
      const parent = sb.cgroupParent;
      const mode = sb.cgroupMode;
      sb.close();
      const leaks = await findLeaks(s.stateDir, parent, mode);
      await removeEmptyParent(mode, parent);
      await fsp.rm(s.base, { recursive: true, force: true });
      assert.deepEqual(leaks, []);
    }
  });

  const alive = async (s: Side, id: string) => {
    const r = await request(s.daemon!.url, "POST", `/v1/sandboxes/${id}/exec`, { key: s.key, json: { cmd: "echo up" } });
    return r.status === 200 && r.text.includes('"exit"') && r.text.includes(Buffer.from("up\n").toString("base64"));
  };

  it("gives each state dir its own cgroup parent, recorded in the state dir", async () => {
    const parents = await Promise.all(a.map((s) => fsp.readFile(path.join(s.stateDir, "cgroup-parent"), "utf8")));
    assert.deepEqual(
      parents.map((p) => p.trim()),
      a.map((s) => derivedCgroupParent(s.stateDir)),
    );
    assert.notEqual(parents[0], parents[1]);
  });

  it("runs two daemons side by side; restarts in any order and a CLI on either leave the other's sandboxes alone", async () => {
    for (const s of a) {
      s.daemon = await spawnDaemon(s.stateDir, DEFAULT_ENV);
      for (const [i, backend] of ["container", "container", "vm"].entries()) {
        const persistent = i === 1;
        const r = await request(s.daemon.url, "POST", "/v1/sandboxes", {
          key: s.key,
          json: { template: "busybox", backend, ...(backend === "vm" ? { resources: { memory: "128M" } } : {}), lifetime: { mode: persistent ? "persistent" : "ephemeral" } },
        });
        assert.equal(r.status, 201, r.text);
        s.ids.push(r.json<{ id: string }>().id);
      }
    }
    const [sa, sb] = a as [Side, Side];
    const check = async () => {
      for (const s of a) for (const id of s.ids) assert.ok(await alive(s, id), `${id} of ${s.stateDir} is alive`);
    };
    await check();
    // A restarted, then B, then B before A.
    for (const order of [[sa, sb], [sb, sa]]) {
      for (const s of order) {
        await stopDaemon(s);
        s.daemon = await spawnDaemon(s.stateDir, DEFAULT_ENV);
      }
      await check();
    }
    // The CLI opening B's state dir (which used to reconcile the shared parent).
    const k = await run(["--state-dir", sb.stateDir, "admin", "key", "create", "--tenant", "other"]);
    assert.equal(k.code, 0, k.stderr);
    const ls = await run(["--state-dir", sa.stateDir, "ls"]);
    assert.equal(ls.code, 0, ls.stderr);
    await check();
  });

  it("gives the sandboxes of two state dirs with the same uid base disjoint host uids", async () => {
    const ranges: { who: string; first: number }[] = [];
    for (const s of a) {
      // The containers (a VM's uid_map is its guest kernel's): the kernel's own mapping of each.
      for (const id of s.ids.slice(0, 2)) {
        const r = await request(s.daemon!.url, "POST", `/v1/sandboxes/${id}/exec`, { key: s.key, json: { cmd: "cat /proc/self/uid_map" } });
        const out = r.text
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as { type: string; data?: string })
          .filter((e) => e.type === "stdout")
          .map((e) => Buffer.from(e.data!, "base64").toString())
          .join("");
        const [inside, first, count] = out.trim().split(/\s+/).map(Number);
        assert.deepEqual([inside, count], [0, UID_RANGE], out);
        ranges.push({ who: `${id} of ${s.stateDir}`, first: first! });
      }
    }
    assert.equal(ranges.length, 4);
    const sorted = [...ranges].sort((x, y) => x.first - y.first);
    for (let i = 1; i < sorted.length; i++) {
      assert.ok(sorted[i]!.first >= sorted[i - 1]!.first + UID_RANGE, `${sorted[i - 1]!.who} and ${sorted[i]!.who} share host uids`);
    }
  });

  it("refuses a second daemon on a served state dir with one line", async () => {
    const s = a[0]!;
    assert.ok(s.daemon, "the first daemon runs");
    const second = await run(["--state-dir", s.stateDir, "daemon", "--listen", "127.0.0.1:0"]);
    assert.notEqual(second.code, 0);
    const lines = second.stderr.trim().split("\n");
    assert.equal(lines.length, 1, second.stderr);
    assert.match(lines[0]!, /already served by a corral daemon \(pid \d+, http:\/\/127\.0\.0\.1:\d+\)/);
    // The first still serves, its sandboxes untouched.
    for (const id of s.ids) assert.ok(await alive(s, id));
  });

  it("sends a CLI on a served state dir through its daemon, with a credential that dies with the daemon", async () => {
    const s = a[0]!;
    const d = s.daemon!;
    const dir = s.stateDir;
    const cred = path.join(dir, "daemon.key");
    const st = fs.statSync(cred);
    assert.deepEqual([st.mode & 0o777, st.uid], [0o600, process.getuid!()]);
    /** `corral --state-dir DIR ARGS` and the runtime modules it loaded (those that open state.db). */
    const cli = async (...args: string[]) => {
      const log = path.join(s.base, `modules-${Math.random().toString(36).slice(2)}.log`);
      const r = await run(["--state-dir", dir, ...args], log);
      const files = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
      fs.rmSync(log, { force: true });
      return { ...r, runtime: files.filter((f) => /\/src\/(runtime\/(sandboxes|db|open-state-dir)|store\/store)\.js$/.test(f)), sdk: files.some((f) => f.endsWith("/sdk/src/http.js")) };
    };
    const through = (r: Awaited<ReturnType<typeof cli>>) => {
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.runtime, [], "never opened the state dir's database");
      assert.ok(r.sdk, "went through the daemon's API");
      return r.stdout;
    };

    // A key made through the daemon (admin key create is an admin's: the operator credential is one).
    const localKey = through(await cli("admin", "key", "create", "--tenant", "local")).trim();
    assert.match(localKey, /^crl_[0-9a-f]{12}_/);
    assert.match(through(await cli("admin", "key", "ls")), /\blocal\s+\S+\s+-\s+active$/m);
    assert.match(through(await cli("template", "ls")), /^busybox\s+built\b/m);
    assert.equal(through(await cli("create", "--name", "via-cli")).trim(), "via-cli");
    // The daemon knows it at once: it made it.
    const listed = await request(d.url, "GET", "/v1/sandboxes", { key: localKey });
    assert.deepEqual(
      listed.json<{ sandboxes: { name: string }[] }>().sandboxes.map((x) => x.name),
      ["via-cli"],
    );
    assert.equal(through(await cli("exec", "via-cli", "--", "echo", "through")), "through\n");
    // Every tenant's, as on the state dir itself (the operator credential's scope).
    const ls = through(await cli("ls"));
    assert.match(ls, /^via-cli\s/m);
    for (const id of s.ids) assert.ok(ls.includes(id), `${id} listed:\n${ls}`);
    through(await cli("rm", "via-cli"));
    assert.equal((await request(d.url, "GET", "/v1/sandboxes/via-cli", { key: localKey })).status, 404);

    // What has no form through the daemon is refused in one line naming it, not done beside it.
    const nix = await cli("template", "build", "x", "--nix", "/dev/null");
    assert.equal(nix.code, 1);
    assert.match(nix.stderr, new RegExp(`^corral: template build --nix acts on the state dir directly, and ${dir} is served by a corral daemon \\(pid ${d.proc.pid}, ${d.url}\\)[^\\n]*\\n$`));

    // SIGKILL: the credential's file stays behind, its key died with the daemon.
    const stale = fs.readFileSync(cred, "utf8").trim();
    await stopDaemon(s);
    const direct = await cli("ls");
    assert.equal(direct.code, 0, direct.stderr);
    assert.ok(direct.runtime.length > 0 && !direct.sdk, "no daemon: the CLI acts on the state dir itself");
    s.daemon = await spawnDaemon(dir, DEFAULT_ENV);
    const fresh = fs.readFileSync(cred, "utf8").trim();
    assert.notEqual(fresh, stale);
    assert.equal((await request(s.daemon.url, "GET", "/v1/sandboxes", { key: stale })).status, 401);
    assert.equal((await request(s.daemon.url, "GET", "/v1/sandboxes", { key: fresh })).status, 200);
    // The credential is not a key of the database: `admin key ls` has only the ones made.
    assert.ok(!through(await cli("admin", "key", "ls")).includes(fresh.split("_")[1]!));
    through(await cli("admin", "key", "create", "--tenant", "after-restart"));
    for (const id of s.ids) assert.ok(await alive(s, id));
  });

  it("refuses a cgroup parent given to a second live state dir in one line, and hands over one whose state dir is gone", async () => {
    const c = await newSide("c");
    const d = await newSide("d");
    const parent = `corral-test-shared-${process.pid}-${Date.now().toString(36)}`;
    try {
      const first = await Sandboxes.open({ stateDir: c.stateDir, cgroupParent: parent });
      const sb = await first.create({ template: "busybox" });
      first.close();
      // The CLI (a reconcile of d's would have taken c's sandbox for an orphan) and the library.
      const cli = await run(["--state-dir", d.stateDir, "ls"], undefined, { CORRAL_CGROUP_PARENT: parent });
      assert.equal(cli.code, 1, cli.stdout);
      assert.equal(cli.stderr, `corral: cgroup parent ${parent} belongs to the state dir ${fs.realpathSync(c.stateDir)}: give ${fs.realpathSync(d.stateDir)} another (CORRAL_CGROUP_PARENT) or none (it then derives its own)\n`);
      await assert.rejects(Sandboxes.open({ stateDir: d.stateDir, cgroupParent: parent }), { code: "conflict", message: /belongs to the state dir/ });
      assert.ok(!fs.existsSync(path.join(d.stateDir, "cgroup-parent")), "the refused state dir recorded nothing");
      // Its owner opens it again; its sandbox was never touched.
      const again = await Sandboxes.open({ stateDir: c.stateDir, cgroupParent: parent });
      let out = "";
      const r = await again.exec(sb.id, { argv: ["echo", "alive"] }, { onStdout: (b) => (out += b.toString()) });
      assert.deepEqual([r.exitCode, out], [0, "alive\n"]);
      await again.destroy(sb.id);
      again.close();
      // Once the owner is gone, the parent is free for another.
      await fsp.rm(c.base, { recursive: true, force: true });
      const taker = await Sandboxes.open({ stateDir: d.stateDir, cgroupParent: parent });
      assert.equal(taker.cgroupParent, parent);
      const mode = taker.cgroupMode;
      taker.close();
      assert.deepEqual(await findLeaks(d.stateDir, parent, mode), []);
      await removeEmptyParent(mode, parent);
    } finally {
      for (const s of [c, d]) await fsp.rm(s.base, { recursive: true, force: true });
    }
  });

  it("refuses a second daemon in the same process too", async () => {
    const { startDaemon } = await import("../../src/server/daemon.js");
    const { pino } = await import("pino");
    const s = a[1]!;
    await assert.rejects(
      startDaemon({ stateDir: s.stateDir, listen: { host: "127.0.0.1", port: 0 }, logger: pino({ level: "silent" }) }),
      { code: "conflict", message: /already served/ },
    );
    for (const id of s.ids) assert.ok(await alive(s, id));
  });
});
