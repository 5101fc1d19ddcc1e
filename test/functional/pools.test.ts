// Warm pools: creates of a pooled shape claim a pre-started sandbox (env,
// metadata, timeout and tenant applied then), never the same one twice, and
// the daemon refills the pool; other shapes start cold.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { processRunning } from "../../src/host/process.js";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";
import { Sandbox } from "../../sdk/src/index.js";

describe("warm pools", () => {
  let t: TestState;
  let d: Daemon;
  let conn: { apiUrl: string; apiKey: string };
  before(async () => {
    t = await freshState("pools");
    d = await testDaemon(t);
    conn = { apiUrl: d.url, apiKey: d.sandboxes.tenants.createKey("pooluser").key };
  });
  after(async () => {
    await d.close();
    await t.close();
  });

  const pools = async () =>
    (await request(d.url, "GET", "/v1/pools", { key: conn.apiKey })).json<{ pools: { key: string; ready: number; hits: number; misses: number; claimP50Ms: number | null }[] }>().pools;
  const ready = async (key: string, n: number) => {
    for (let i = 0; i < 200; i++) {
      if ((await pools()).find((p) => p.key === key)?.ready === n) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`pool ${key} never reached ${n} ready`);
  };

  it("claims pre-started sandboxes, applies the request, refills, and never hands one out twice", async () => {
    const key = d.sandboxes.pools.set("busybox", {}, 2).key;
    await ready(key, 2);
    const pooled = new Set(d.sandboxes.pools.waiting(key).map((w) => w.id));

    const sb = await Sandbox.create({ ...conn, template: "busybox", envs: { WHO: "claimer" }, metadata: { job: "j1" }, timeoutMs: 60_000 });
    assert.ok(pooled.has(sb.sandboxId), "the create did not come from the pool");
    const info = await sb.info();
    assert.deepEqual(info.metadata, { job: "j1" });
    assert.notEqual(info.expiresAt, null);
    assert.equal((await sb.commands.run("echo $WHO")).stdout, "claimer\n");
    // It answers to its own name, not the pool's.
    assert.equal((await sb.commands.run("hostname")).stdout, `${info.name}\n`);
    // The pool's own tenant is invisible to the user; the claimed one is theirs.
    assert.deepEqual((await Sandbox.list(conn)).map((x) => x.sandboxId), [sb.sandboxId]);

    await ready(key, 2);
    const burst = await Promise.all(Array.from({ length: 5 }, () => Sandbox.create({ ...conn, template: "busybox" })));
    const ids = [sb.sandboxId, ...burst.map((b) => b.sandboxId)];
    for (const b of burst) assert.equal((await b.commands.run("hostname")).stdout, `${(await b.info()).name}\n`);
    assert.equal(new Set(ids).size, ids.length, "a sandbox was handed out twice");
    const stats = (await pools()).find((p) => p.key === key)!;
    assert.equal(stats.hits + stats.misses, 6);
    assert.ok(stats.hits >= 2 && stats.claimP50Ms !== null, JSON.stringify(stats));

    // Refilled with new sandboxes, never with ones that were handed out.
    await ready(key, 2);
    const refill = d.sandboxes.pools.waiting(key).map((w) => w.id);
    assert.ok(refill.every((id) => !ids.includes(id)));

    // Another shape starts cold.
    const other = await Sandbox.create({ ...conn, template: "busybox", resources: { memory: "256M" } });
    assert.ok(!refill.includes(other.sandboxId) && !pooled.has(other.sandboxId));

    for (const x of [sb, ...burst, other]) await x.kill();
    d.sandboxes.pools.set("busybox", {}, 0);
    await ready(key, 0);
    assert.deepEqual(d.sandboxes.pools.waiting(key), []);
  });

  it("gives a claimed sandbox the name it was created with as its hostname", async () => {
    const key = d.sandboxes.pools.set("busybox", { memory: "160M" }, 1).key;
    await ready(key, 1);
    const sb = await Sandbox.create({ ...conn, template: "busybox", resources: { memory: "160M" }, name: "renamed-on-claim" });
    assert.equal((await pools()).find((p) => p.key === key)?.hits, 1, "the create did not claim");
    assert.equal((await sb.commands.run("hostname")).stdout, "renamed-on-claim\n");
    await sb.kill();
    d.sandboxes.pools.set("busybox", { memory: "160M" }, 0);
    await ready(key, 0);
  });

  it("never hands out a pooled sandbox that died while it waited", async () => {
    const key = d.sandboxes.pools.set("busybox", { memory: "192M" }, 1).key;
    await ready(key, 1);
    const [waiting] = d.sandboxes.pools.waiting(key);
    assert.ok(waiting);
    // The daemon holds a connection to the waiting sandbox's agent; its death closes it.
    const status = JSON.parse(fs.readFileSync(path.join(t.stateDir, "crun", waiting.id, "status"), "utf8")) as { pid: number };
    process.kill(status.pid, "SIGKILL");
    for (let i = 0; i < 500 && processRunning(status.pid); i++) await new Promise((r) => setTimeout(r, 20));
    const sb = await Sandbox.create({ ...conn, template: "busybox", resources: { memory: "192M" } });
    assert.notEqual(sb.sandboxId, waiting.id);
    assert.equal((await sb.commands.run("true")).exitCode, 0);
    await sb.kill();
    d.sandboxes.pools.set("busybox", { memory: "192M" }, 0);
  });
});
