// Warm pools of microVMs fill from a snapshot: the first VM of a shape
// boots cold and is saved while idle, the others are restored copies that
// each get their own hostname and fresh randomness, and a create of that
// shape claims one.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { shOk } from "../helpers/exec.js";
import { POOL_TENANT } from "../../src/runtime/pools.js";

describe("VM pools from snapshots", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("vm-pools");
  });
  after(async () => t.close());

  const sh = (id: string, cmd: string) => shOk(t.s, id, cmd);

  it("restores pooled VMs from one snapshot, each with its own identity, and a create claims one", async () => {
    const pool = t.s.pools.set("busybox", { memory: "192M" }, 3, "vm");
    await t.s.refillPools();
    const snaps = fs.readdirSync(path.join(t.stateDir, "vm", "snapshots")).filter((d) => !d.includes("."));
    assert.equal(snaps.length, 1, `snapshots: ${snaps.join(",")}`);
    const saved = JSON.parse(fs.readFileSync(path.join(t.stateDir, "vm", "snapshots", snaps[0]!, "snapshot.json"), "utf8")) as { bytes: number };
    assert.ok(saved.bytes > 0 && saved.bytes < 192 * 1024 * 1024, `snapshot of ${saved.bytes} bytes`);

    const waiting = await t.s.list({ tenant: POOL_TENANT });
    assert.equal(waiting.length, 3);
    const seen = new Map<string, string>();
    for (const sb of waiting) {
      assert.equal(sb.status, "running");
      const [host, rand] = (await sh(sb.id, "hostname; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'")).trim().split("\n");
      assert.equal(host, `sb-${sb.id.slice(0, 8)}`, "a restored VM takes its own hostname (the name an unnamed claim gives it)");
      assert.ok(!seen.has(rand!), "two restored VMs produced the same random bytes");
      seen.set(rand!, sb.id);
    }

    const claimed = await t.s.create({ template: "busybox", backend: "vm", resources: { memory: "192M" }, name: "vm-claimed" });
    assert.ok(waiting.some((w) => w.id === claimed.id), "the create did not claim a pooled VM");
    assert.equal((await sh(claimed.id, "echo claimed")).trim(), "claimed");
    assert.equal((await sh(claimed.id, "hostname")).trim(), "vm-claimed", "a claimed VM takes the name it was created with");
    assert.equal((await t.s.list({ tenant: POOL_TENANT })).length, 2);
    t.s.pools.set("busybox", { memory: "192M" }, 0, "vm");
    assert.equal(t.s.pools.list().find((p) => p.key === pool.key)?.backend, "vm");
  });

  it("store gc removes a VM image, and the snapshots made on it, once nothing stands on its layers", async () => {
    const images = () => fs.readdirSync(path.join(t.stateDir, "store", "images")).filter((f) => f.endsWith(".erofs"));
    const snapshots = () => fs.readdirSync(path.join(t.stateDir, "vm", "snapshots")).filter((d) => !d.includes("."));
    assert.equal(images().length, 1);
    assert.deepEqual((await t.s.gc(0)).images, [], "an image VMs stand on was collected");
    for (const sb of [...(await t.s.list()), ...(await t.s.list({ tenant: POOL_TENANT }))]) await t.s.destroy(sb.id);
    assert.deepEqual((await t.s.gc(0)).images, [], "the busybox template still names the image's layers");
    await t.s.store.removeTemplate("busybox");
    const r = await t.s.gc(0);
    assert.equal(r.images.length, 1);
    assert.deepEqual([images(), snapshots()], [[], []]);
  });
});
