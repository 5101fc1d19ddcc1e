// The declared state the NixOS module renders drives a real daemon
// (`corral daemon --declared`, its own process): declared sandboxes appear
// on start, a change applies on SIGHUP (a persistent one keeps its disk),
// a removed one goes and leaves nothing, an API-made sandbox is untouched.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { freshState, type TestState } from "../helpers/state.js";
import { request } from "../helpers/daemon.js";
import { PACKAGE, evalModule, noNixEval } from "../helpers/nix-eval.js";
import { spawnDaemon } from "../../src/server/spawn.js";
import { corralRemote } from "../helpers/cli.js";

interface ApiSandbox {
  id: string;
  name: string;
  status: string;
  declared?: boolean;
  spec: { resources: { memory: number }; backend: string };
}

describe("declared state drives a real daemon", { skip: noNixEval }, () => {
  let t: TestState;
  let base: string;
  let file: string;
  let key: string;
  let d: { proc: ChildProcess; url: string } | undefined;

  /** The module's declared state for these sandboxes (Nix text), written where the daemon reads it. */
  async function declare(sandboxes: string): Promise<void> {
    const m = evalModule(base, `{
      enable = true; package = ${PACKAGE}; extraPackages = [ ];
      allowedShares = [ "${base}/ws" ];
      apiKeys.alice = { keyFile = "${base}/alice.key"; admin = true; };
      pools.busybox = { size = 1; memory = "64M"; };
      sandboxes = ${sandboxes};
    }`);
    assert.deepEqual(m.failedAssertions, []);
    await fsp.writeFile(file, m.declared);
  }

  const start = async () => (d = await spawnDaemon(t.stateDir, { CORRAL_CGROUP_PARENT: t.cgroupParent }, ["--declared", file]));
  async function stop(): Promise<void> {
    if (!d) return;
    const gone = new Promise((r) => d!.proc.once("exit", r));
    d.proc.kill("SIGTERM");
    await gone;
    d = undefined;
  }
  const list = async () => (await request(d!.url, "GET", "/v1/sandboxes", { key })).json<{ sandboxes: ApiSandbox[] }>().sandboxes;
  const byName = async () => Object.fromEntries((await list()).map((s) => [s.name, s]));
  async function sh(id: string, cmd: string): Promise<{ exit: number | undefined; out: string }> {
    const r = await request(d!.url, "POST", `/v1/sandboxes/${id}/exec`, { key, json: { cmd } });
    const events = r.text.trim().split("\n").map((l) => JSON.parse(l) as { type: string; data?: string; exitCode?: number });
    return { exit: events.find((e) => e.type === "exit")?.exitCode, out: events.filter((e) => e.type === "stdout").map((e) => Buffer.from(e.data!, "base64").toString()).join("") };
  }
  /** Sends SIGHUP and waits until `done` holds of the list (the reload is applied in the background). */
  async function reload(done: (s: Record<string, ApiSandbox>) => boolean): Promise<Record<string, ApiSandbox>> {
    d!.proc.kill("SIGHUP");
    for (let i = 0; i < 600; i++) {
      const s = await byName();
      if (done(s)) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the reload did not apply: ${JSON.stringify(await byName())}`);
  }

  before(async () => {
    t = await freshState("declared");
    base = path.dirname(t.stateDir);
    file = path.join(base, "declared.json");
    await fsp.mkdir(path.join(base, "ws/dev"), { recursive: true });
    await fsp.chown(path.join(base, "ws/dev"), t.s.uidBase, t.s.uidBase);
    await fsp.writeFile(path.join(base, "ws/dev/on-host.txt"), "from the host\n");
    key = `crl_${randomBytes(6).toString("hex")}_${randomBytes(32).toString("base64url")}`;
    await fsp.writeFile(path.join(base, "alice.key"), `${key}\n`, { mode: 0o600 });
  });
  after(async () => {
    await stop().catch(() => {});
    await t.close();
  });

  const V1 = `{
    dev = { type = "vm"; tenant = "alice"; memory = "128M"; disk = "64M"; shares = [ { source = "BASE/ws/dev"; target = "/work"; } ]; };
    box = { type = "container"; tenant = "alice"; memory = "64M"; };
    gone = { type = "container"; tenant = "alice"; persistent = false; memory = "64M"; };
  }`;

  it("creates the declared sandboxes on start, registers the key, fills the pool", async () => {
    await declare(V1.replaceAll("BASE", base));
    await start();
    const s = await byName();
    assert.deepEqual(Object.keys(s).sort(), ["box", "dev", "gone"]);
    for (const x of Object.values(s)) assert.deepEqual([x.status, x.declared], ["running", true], x.name);
    assert.equal(s["dev"]!.spec.backend, "vm");
    assert.deepEqual(await sh(s["dev"]!.id, "cat /work/on-host.txt"), { exit: 0, out: "from the host\n" });
    assert.equal((await sh(s["box"]!.id, "echo kept > /root/keep")).exit, 0);
    // An ephemeral declared sandbox has no expiry: it lives while declared.
    assert.equal((await request(d!.url, "GET", `/v1/sandboxes/${s["gone"]!.id}`, { key })).json<{ expiresAt: unknown }>().expiresAt, null);
    const pools = (await request(d!.url, "GET", "/v1/pools", { key })).json<{ pools: { template: string; target: number }[] }>().pools;
    assert.deepEqual(pools.map((p) => [p.template, p.target]), [["busybox", 1]]);
  });

  let api: ApiSandbox;
  it("a change applies on SIGHUP: memory recreates (the persistent one keeps its disk), a removed one goes, an API-made one stays", async () => {
    const r = await request(d!.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", name: "api", lifetime: { mode: "persistent" }, resources: { memory: "64M" } } });
    assert.equal(r.status, 201, r.text);
    api = r.json<ApiSandbox>();
    assert.equal(api.declared, undefined);
    const before = await byName();
    const goneDir = path.join(t.stateDir, "sandboxes", before["gone"]!.id);
    assert.ok(fs.existsSync(goneDir));

    await declare(V1.replaceAll("BASE", base).replace('box = { type = "container"; tenant = "alice"; memory = "64M"; };', 'box = { type = "container"; tenant = "alice"; memory = "96M"; };').replace(/gone = .*\n/, ""));
    const s = await reload((x) => !x["gone"] && x["box"]?.spec.resources.memory === 96 * 1024 ** 2 && x["box"].status === "running");
    assert.equal(s["box"]!.id, before["box"]!.id, "a persistent sandbox is restarted on its own disk");
    assert.deepEqual(await sh(s["box"]!.id, "cat /root/keep"), { exit: 0, out: "kept\n" });
    // The new limit holds on the host's cgroup (v1 memory controller, or cgroup2).
    const cg = [`/sys/fs/cgroup/memory/${t.cgroupParent}/${s["box"]!.id}/memory.limit_in_bytes`, `/sys/fs/cgroup/${t.cgroupParent}/${s["box"]!.id}/memory.max`].find((f) => fs.existsSync(f))!;
    assert.equal(Number(fs.readFileSync(cg, "utf8")), 96 * 1024 ** 2);
    assert.equal(fs.existsSync(goneDir), false, "nothing left of the removed one");
    assert.equal(s["dev"]!.id, before["dev"]!.id, "unchanged");
    assert.deepEqual([s["api"]?.id, s["api"]?.status, s["api"]?.declared], [api.id, "running", undefined]);
  });

  it("corral ls through the daemon says which are declared", async () => {
    const ls = await corralRemote(d!.url, key, "ls");
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^NAME .*DECLARED\n/);
    assert.match(ls.stdout, /^box\s.*\syes\n/m);
    assert.match(ls.stdout, /^api\s.*\s-\n/m);
  });

  it("a restarted daemon applies the same state without recreating anything; a name held by an API sandbox is refused", async () => {
    const before = await byName();
    await stop();
    await declare(V1.replaceAll("BASE", base).replace(/gone = .*\n/, 'api = { type = "container"; tenant = "alice"; };\n').replace('memory = "64M"; };', 'memory = "96M"; };'));
    await start();
    const s = await byName();
    assert.deepEqual(Object.fromEntries(Object.values(s).map((x) => [x.name, x.id])), Object.fromEntries(Object.values(before).map((x) => [x.name, x.id])));
    assert.equal(s["api"]!.declared, undefined, "the API's sandbox is not taken over");
  });

  it("an empty declaration removes every declared sandbox and leaves nothing of virtiofsd", async () => {
    const devId = (await byName())["dev"]!.id;
    await declare("{ }");
    const s = await reload((x) => !x["dev"] && !x["box"]);
    assert.deepEqual(Object.keys(s), ["api"]);
    const virtiofsd = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p) && (() => {
      try {
        const c = fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
        return c.includes("virtiofsd") && c.includes(devId);
      } catch {
        return false;
      }
    })());
    assert.deepEqual(virtiofsd, []);
    await request(d!.url, "DELETE", `/v1/sandboxes/${api.id}`, { key });
    await stop();
  });
});
