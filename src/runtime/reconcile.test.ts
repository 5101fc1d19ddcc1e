// Reconcile over a fake backend and host (no root): rows without host
// state, host state without rows, creators that died, expired sandboxes.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fakeRuntime } from "../../test/helpers/fake-runtime.js";

const insertCreating = (db: { prepare(sql: string): { run(...a: unknown[]): unknown } }, id: string, pid: number) =>
  db
    .prepare("INSERT INTO sandboxes (id, tenant_id, name, spec, state, created_at, expires_at, creator_pid) VALUES (?, 'local', ?, ?, 'creating', ?, NULL, ?)")
    .run(id, `c-${id.slice(-6)}`, JSON.stringify({ template: "tpl", backend: "container", lifetime: { mode: "ephemeral" } }), new Date().toISOString(), pid);

test("a row whose creator died mid-create is removed; one whose creator lives is left to it", async () => {
  const f = await fakeRuntime();
  try {
    f.host.spawnProcess(4242, 7);
    insertCreating(f.s.db, "0000000000000001", 4243); // no such process on the fake host
    insertCreating(f.s.db, "0000000000000002", 4242);
    const { removed } = await f.s.reconcile();
    assert.deepEqual(removed, ["0000000000000001"]);
    assert.ok(f.container.calls.includes("destroy 0000000000000001"));
    assert.deepEqual((f.s.db.prepare("SELECT id FROM sandboxes").all() as { id: string }[]).map((r) => r.id), ["0000000000000002"]);
  } finally {
    await f.close();
  }
});

test("a sandbox found dead: an ephemeral one is removed, a persistent one stopped with its disk", async () => {
  const f = await fakeRuntime();
  try {
    const cattle = await f.s.create({ template: "tpl" });
    const pet = await f.s.create({ template: "tpl", name: "pet", lifetime: { mode: "persistent" } });
    const fine = await f.s.create({ template: "tpl" });
    f.container.sandboxes.get(cattle.id)!.status = "missing";
    f.container.sandboxes.get(pet.id)!.status = "crashed";
    const again = await f.reopen(); // open reconciles
    assert.deepEqual((await again.list()).map((x) => [x.id, x.status]), [
      [pet.id, "stopped"],
      [fine.id, "running"],
    ]);
    assert.ok(f.container.calls.includes(`destroy ${cattle.id}`));
    assert.ok(f.container.calls.includes(`stop ${pet.id}`));
    assert.ok(!f.container.calls.includes(`destroy ${pet.id}`));
  } finally {
    await f.close();
  }
});

test("host state without a row is destroyed by every backend; names that are not sandbox ids are left alone", async () => {
  const f = await fakeRuntime();
  try {
    const kept = await f.s.create({ template: "tpl" });
    const orphanDir = "00000000000000aa";
    fs.mkdirSync(path.join(f.stateDir, "sandboxes", orphanDir));
    f.container.hostOnly.add("00000000000000bb");
    f.host.children.set("corral-fake", ["00000000000000cc", "spare-123", kept.id]);
    const { removed } = await f.s.reconcile();
    assert.deepEqual(removed.sort(), ["00000000000000aa", "00000000000000bb", "00000000000000cc"]);
    for (const id of removed) {
      assert.ok(f.container.calls.includes(`destroy ${id}`), `container destroys ${id}`);
      assert.ok(f.vm.calls.includes(`destroy ${id}`), `vm destroys ${id}`);
    }
    assert.ok(!fs.existsSync(path.join(f.stateDir, "sandboxes", orphanDir)));
    assert.equal((await f.s.get(kept.id)).status, "running");
    assert.ok(f.container.calls.includes("sweep") && f.vm.calls.includes("sweep"));
  } finally {
    await f.close();
  }
});

test("expired sandboxes are removed at open", async () => {
  const f = await fakeRuntime();
  try {
    const sb = await f.s.create({ template: "tpl", lifetime: { timeoutSeconds: 1 } });
    f.s.db.prepare("UPDATE sandboxes SET expires_at = ? WHERE id = ?").run(new Date(Date.now() - 1000).toISOString(), sb.id);
    await f.reopen();
    assert.deepEqual(await f.s.list(), []);
    const ev = f.s.db.prepare("SELECT detail FROM events WHERE sandbox_id = ? AND type = 'destroyed'").get(sb.id) as { detail: string };
    assert.deepEqual(JSON.parse(ev.detail), { reason: "timeout" });
  } finally {
    await f.close();
  }
});
