// cgroup limits really hold: memory (OOM kill, reported as such), pids
// (a fork bomb is contained), and the host and other sandboxes carry on.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";
import { ContainerCgroup } from "../../src/host/cgroups.js";

describe("resource limits", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("limits");
  });
  after(async () => t.close());

  it("OOM-kills a 64 MiB sandbox that allocates 200 MiB, and reports it", async () => {
    const small = await t.s.create({ template: "busybox", resources: { memory: "64M" } });
    const neighbour = await t.s.create({ template: "busybox" });
    const r = await t.s.exec(small.id, { argv: ["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"] });
    assert.equal(r.signal, 9);
    assert.equal(r.oomKilled, true);
    assert.equal((await t.s.stats(small.id)).oomKills >= 1, true);
    // The sandbox itself (its agent) survives and answers; so does the neighbour.
    assert.equal((await t.s.exec(small.id, { cmd: "echo alive" })).exitCode, 0);
    assert.equal((await t.s.exec(neighbour.id, { cmd: "true" })).exitCode, 0);
    // A normal exit is not mistaken for an OOM kill.
    const fine = await t.s.exec(small.id, { argv: ["dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1"] });
    assert.equal(fine.exitCode, 0);
    assert.equal(fine.oomKilled, false);
  });

  it("stops a fork bomb at a pids limit of 64", async () => {
    const sb = await t.s.create({ template: "busybox", resources: { pids: 64 } });
    const c = await t.s.agent(sb.id);
    try {
      const r = await c.run({ cmd: "bomb() { bomb | bomb & }; bomb; sleep 2", timeoutMs: 3000 });
      assert.ok(r.timedOut || r.exitCode !== null);
      const stats = await t.s.stats(sb.id);
      assert.ok(stats.pids <= 64, `pids.current ${stats.pids}`);
      const hits = await new ContainerCgroup(t.s.cgroupMode, `${t.cgroupParent}/${sb.id}`).pidsLimitHits();
      assert.ok(hits > 0, "the pids limit was never reached");
    } finally {
      c.close();
    }
    // Clean up the bomb's remains, then the sandbox answers again.
    for (let i = 0; i < 50; i++) {
      const r = await t.s.exec(sb.id, { cmd: "kill -9 -1 2>/dev/null; true" }).catch(() => undefined);
      if (r?.exitCode === 0 && (await t.s.stats(sb.id)).pids <= 2) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal((await t.s.exec(sb.id, { cmd: "echo ok" })).exitCode, 0);
  });

  it("limits CPU to the requested share", async () => {
    const sb = await t.s.create({ template: "busybox", resources: { vcpus: 0.2 } });
    const before = (await t.s.stats(sb.id)).cpuNanos;
    const started = process.hrtime.bigint();
    await t.s.exec(sb.id, { cmd: "timeout 1 sh -c 'while :; do :; done'; true" });
    const wallNs = Number(process.hrtime.bigint() - started);
    const used = (await t.s.stats(sb.id)).cpuNanos - before;
    assert.ok(used / wallNs < 0.4, `used ${(used / wallNs).toFixed(2)} of a core with a 0.2 limit`);
  });
});
