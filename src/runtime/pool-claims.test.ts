// Warm pools over a fake backend (no root): refill, claims that never hand
// a sandbox out twice, quotas checked in the claim's transaction.
import { test } from "node:test";
import assert from "node:assert/strict";
import { POOL_TENANT, poolKey } from "./pools.js";
import { parseSpec } from "../core/sandbox-spec.js";
import { fakeRuntime } from "../../test/helpers/fake-runtime.js";

const shape = { memory: "64M" };

test("refill starts a pool's sandboxes under the pool tenant, answering to an unnamed claim's hostname", async () => {
  const f = await fakeRuntime();
  try {
    const pool = f.s.pools.set("tpl", shape, 2);
    assert.deepEqual(await f.s.refillPools(), { started: 2, removed: 0 });
    assert.deepEqual(await f.s.refillPools(), { started: 0, removed: 0 });
    const waiting = await f.s.list({ tenant: POOL_TENANT });
    assert.equal(waiting.length, 2);
    for (const w of waiting) {
      assert.match(w.name, /^pool-[0-9a-f]{8}$/);
      assert.equal(w.expiresAt, null);
      assert.equal(f.container.sandboxes.get(w.id)?.hostname, `sb-${w.id.slice(0, 8)}`);
    }
    assert.deepEqual(await f.s.list(), [], "pooled sandboxes are nobody's until claimed");
    assert.equal(f.s.pools.list()[0]?.ready, 2);
    f.s.pools.set("tpl", shape, 1);
    assert.deepEqual(await f.s.refillPools(), { started: 0, removed: 1 });
    assert.equal(f.s.pools.waiting(pool.key).length, 1);
  } finally {
    await f.close();
  }
});

test("a create of a pooled shape claims the oldest; a name is taken in the background, an unnamed claim renames nothing", async () => {
  const f = await fakeRuntime();
  try {
    const pool = f.s.pools.set("tpl", shape, 2);
    await f.s.refillPools();
    const [oldest, next] = f.s.pools.waiting(pool.key);
    const named = await f.s.create({ template: "tpl", name: "mine", resources: shape, lifetime: { timeoutSeconds: 30 } }, { tenant: "local" });
    assert.deepEqual([named.id, named.name, named.tenant, named.status], [oldest?.id, "mine", "local", "running"]);
    assert.ok(named.expiresAt !== null);
    const unnamed = await f.s.create({ template: "tpl", resources: shape });
    assert.deepEqual([unnamed.id, unnamed.name], [next?.id, `sb-${next?.id.slice(0, 8)}`]);
    assert.deepEqual(f.container.calls.filter((c) => c.startsWith("rename")), [`rename ${oldest?.id} mine`]);
    // Empty now: a cold start, counted as a miss.
    const cold = await f.s.create({ template: "tpl", resources: shape });
    assert.ok(![oldest?.id, next?.id].includes(cold.id));
    const stats = f.s.pools.list()[0];
    assert.deepEqual([stats?.hits, stats?.misses], [2, 1]);
    // Another shape (more memory), or a persistent sandbox, never comes from this pool.
    await f.s.refillPools();
    const other = await f.s.create({ template: "tpl", resources: { memory: "128M" } });
    const pet = await f.s.create({ template: "tpl", resources: shape, lifetime: { mode: "persistent" } });
    assert.equal(f.s.pools.waiting(pool.key).length, 2, `${other.id} ${pet.id} were started cold`);
  } finally {
    await f.close();
  }
});

test("concurrent claims never hand out one sandbox twice", async () => {
  const f = await fakeRuntime();
  try {
    const pool = f.s.pools.set("tpl", shape, 3);
    await f.s.refillPools();
    const pooled = new Set(f.s.pools.waiting(pool.key).map((w) => w.id));
    const got = await Promise.all(Array.from({ length: 8 }, () => f.s.create({ template: "tpl", resources: shape })));
    const ids = got.map((g) => g.id);
    assert.equal(new Set(ids).size, 8, "eight distinct sandboxes");
    assert.equal(ids.filter((id) => pooled.has(id)).length, 3, "each pooled one handed out once");
    // A second process (another connection to the database) cannot claim what this one has.
    await f.s.refillPools();
    const [w] = f.s.pools.waiting(pool.key);
    const other = await f.reopen();
    assert.equal((await other.create({ template: "tpl", resources: shape })).id, w?.id);
    assert.notEqual((await f.s.create({ template: "tpl", resources: shape })).id, w?.id);
  } finally {
    await f.close();
  }
});

test("a claim checks the tenant's quota in its transaction and leaves the sandbox in its pool when refused", async () => {
  const f = await fakeRuntime();
  try {
    const pool = f.s.pools.set("tpl", shape, 1);
    await f.s.refillPools();
    f.s.tenants.create("tight", { maxMemory: 32 * 1024 ** 2 });
    await assert.rejects(f.s.create({ template: "tpl", resources: shape }, { tenant: "tight" }), { code: "quota_exceeded" });
    assert.equal(f.s.pools.waiting(pool.key).length, 1);
    assert.deepEqual(await f.s.list({ tenant: "tight" }), []);
    // A name the tenant already uses is refused the same way, in the same transaction.
    await f.s.create({ template: "tpl", name: "taken", resources: { memory: "128M" } });
    await assert.rejects(f.s.create({ template: "tpl", name: "taken", resources: shape }), { code: "conflict" });
    assert.equal(f.s.pools.waiting(pool.key).length, 1);
  } finally {
    await f.close();
  }
});

test("a pooled sandbox found dead at claim is removed and the next one taken", async () => {
  const f = await fakeRuntime();
  try {
    const pool = f.s.pools.set("tpl", shape, 2);
    await f.s.refillPools();
    const [dead, alive] = f.s.pools.waiting(pool.key);
    f.container.sandboxes.get(dead!.id)!.status = "stopped";
    assert.equal((await f.s.create({ template: "tpl", resources: shape })).id, alive?.id);
    assert.ok(f.container.calls.includes(`destroy ${dead?.id}`));
    assert.equal(f.s.pools.waiting(pool.key).length, 0);
  } finally {
    await f.close();
  }
});

test("a VM's hypervisor is part of its pool shape; QEMU's keeps the key it had before vmm existed", () => {
  const vm = (vmm?: string) => parseSpec({ template: "tpl", backend: "vm", ...(vmm ? { vmm } : {}) });
  const { vmm: _, ...withoutVmm } = vm();
  assert.equal(poolKey(vm("qemu")), poolKey(withoutVmm));
  assert.notEqual(poolKey(vm("firecracker")), poolKey(vm("qemu")));
  assert.notEqual(poolKey(vm("cloud-hypervisor")), poolKey(vm("firecracker")));
});
