// Removing a sandbox, a failed create and a create killed half way all
// leave nothing behind: no mount, cgroup, process, crun state or directory.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freshState, type TestState } from "../helpers/state.js";
import { findLeaks } from "../helpers/leaks.js";
import { runKilledAfter } from "../helpers/killed-child.js";
import { Sandboxes } from "../../src/runtime/sandboxes.js";

const here = path.dirname(fileURLToPath(import.meta.url));

describe("cleanup", () => {
  let t: TestState;
  const leaks = () => findLeaks(t.stateDir, t.cgroupParent, t.s.cgroupMode);
  before(async () => {
    t = await freshState("cleanup");
  });
  after(async () => t.close());

  it("destroy removes everything, and is idempotent", async () => {
    const sb = await t.s.create({ template: "busybox", name: "gone", lifetime: { mode: "persistent" } });
    await t.s.exec(sb.id, { cmd: "sleep 1000 & echo started > /tmp/x" });
    await t.s.destroy("gone");
    assert.deepEqual(await leaks(), []);
    await assert.rejects(t.s.destroy("gone"), { code: "sandbox_not_found" });
    await t.s.backend("container").attach(sb.id, path.join(t.stateDir, "sandboxes", sb.id)).destroy();
  });

  it("a failed create leaves nothing behind", async () => {
    // A template whose layer is gone: the overlay mount fails in the launcher.
    await t.s.store.registerTemplate("vanished", ["0".repeat(64)], "test");
    await assert.rejects(t.s.create({ template: "vanished", name: "broken" }), { code: "backend_failed" });
    await assert.rejects(t.s.create({ template: "no-such-template" }), { code: "template_not_found" });
    assert.deepEqual(await leaks(), []);
    // The name is free again.
    const ok = await t.s.create({ template: "busybox", name: "broken" });
    await t.s.destroy(ok.id);
  });

  it("a create killed half way is cleaned up by the next open", async () => {
    for (const delay of [30, 80, 150]) {
      const child = await runKilledAfter(path.join(here, "create-child.js"), [t.stateDir, t.cgroupParent], delay);
      const again = await Sandboxes.open({ stateDir: t.stateDir, cgroupParent: t.cgroupParent });
      // Whatever the child got to: either nothing or a running sandbox.
      for (const sb of await again.list()) await again.destroy(sb.id);
      again.close();
      assert.deepEqual(await leaks(), [], `after a kill at ${delay} ms${child.endedBySelf ? ` (it ended first, exit ${child.code})` : ""}`);
      assert.equal((t.s.db.prepare("SELECT count(*) AS n FROM sandboxes").get() as { n: number }).n, 0);
    }
  });

  it("reconcile removes cgroups and crun state without a sandbox", async () => {
    const sb = await t.s.create({ template: "busybox" });
    // Simulate a database that lost the row of a running sandbox.
    t.s.db.prepare("DELETE FROM sandboxes WHERE id = ?").run(sb.id);
    const again = await Sandboxes.open({ stateDir: t.stateDir, cgroupParent: t.cgroupParent });
    assert.equal((await again.list()).length, 0);
    again.close();
    assert.deepEqual(await leaks(), []);
  });

  it("reconcile reclaims what a crashed build left in store/tmp, and only that", async () => {
    const tmp = t.s.store.tmpDir;
    // A pid that cannot be alive (above pid_max) and this live process.
    const dead = path.join(tmp, "build-x-p99999999-0123456789ab");
    const live = t.s.store.workPath("build-y");
    await fsp.mkdir(path.join(dead, "etc"), { recursive: true });
    await fsp.mkdir(live);
    await t.s.reconcile();
    await assert.rejects(fsp.access(dead));
    await fsp.access(live);
    await fsp.rm(live, { recursive: true });
  });
});
