// Snapshot bookkeeping over a fake VM backend (no root): the rows, the
// names, what restore starts from, and what gc keeps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fakeRuntime } from "../../test/helpers/fake-runtime.js";

test("a snapshot is recorded per tenant by name, restored into a new sandbox, and deleted with its files", async () => {
  const f = await fakeRuntime();
  try {
    const src = await f.s.create({ template: "tpl", backend: "vm", name: "src", env: { A: "1" } });
    const snap = await f.s.snapshot("src", "s1");
    assert.deepEqual([snap.name, snap.source, snap.bytes, snap.spec.name, snap.spec.env], ["s1", "src", 4096, undefined, { A: "1" }]);
    await assert.rejects(f.s.snapshot("src", "s1"), { code: "conflict", message: 'a snapshot named "s1" already exists' });
    assert.equal(f.vm.calls.filter((c) => c.startsWith("snapshot")).length, 1, "a taken name is refused before the backend saves anything");
    await assert.rejects(f.s.snapshot("src", "Bad Name"), { code: "invalid_argument" });
    assert.deepEqual(f.s.listSnapshots().map((x) => x.name), ["s1"]);
    assert.deepEqual(f.s.listSnapshots({ tenant: "_pool" }), []);

    const copy = await f.s.restoreSnapshot("s1", { name: "copy" });
    assert.deepEqual([copy.name, copy.spec.env, copy.status], ["copy", { A: "1" }, "running"]);
    const [snapshotId] = [...f.vm.snapshots.keys()];
    assert.equal(f.vm.sandboxes.get(copy.id)?.fromSnapshot, snapshotId);
    assert.deepEqual(f.vm.sandboxes.get(copy.id)?.layers, [f.s.store.layerDir(f.layer)]);

    // Its layers stay in use after the source and its copy are gone.
    await f.s.destroy(src.id);
    await f.s.destroy(copy.id);
    assert.deepEqual([...(await f.s.layersInUse())], [f.layer]);
    await f.s.deleteSnapshot("s1");
    assert.deepEqual([...(await f.s.layersInUse())], []);
    assert.equal(f.vm.snapshots.size, 0);
    await assert.rejects(f.s.restoreSnapshot("s1"), { code: "snapshot_not_found" });
  } finally {
    await f.close();
  }
});

test("a container cannot be snapshotted; a snapshot whose files are gone cannot be restored", async () => {
  const f = await fakeRuntime();
  try {
    await f.s.create({ template: "tpl", name: "ct" });
    await assert.rejects(f.s.snapshot("ct", "x"), { code: "conflict" });
    await f.s.create({ template: "tpl", backend: "vm", name: "guest" });
    await f.s.snapshot("guest", "lost");
    f.vm.snapshots.clear();
    await assert.rejects(f.s.restoreSnapshot("lost"), { code: "host_unsupported" });
  } finally {
    await f.close();
  }
});

test("a failed restore is recorded as a removal and leaves no row or sandbox", async () => {
  const f = await fakeRuntime();
  try {
    await f.s.create({ template: "tpl", backend: "vm", name: "guest" });
    await f.s.snapshot("guest", "s");
    f.vm.failNext = new Error("qemu refused the state");
    await assert.rejects(f.s.restoreSnapshot("s", { name: "broken" }), /qemu refused/);
    assert.deepEqual((await f.s.list()).map((x) => x.name), ["guest"]);
    assert.equal(f.vm.sandboxes.size, 1);
    const ev = f.s.db.prepare("SELECT detail FROM events WHERE type = 'destroyed' ORDER BY id DESC").get() as { detail: string };
    assert.deepEqual(JSON.parse(ev.detail), { reason: "restore failed" });
  } finally {
    await f.close();
  }
});
