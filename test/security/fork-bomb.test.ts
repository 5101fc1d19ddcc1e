// Fork bomb (issue 18 part 9): `f(){ f|f& };f` in a sandbox. Its pids
// cgroup holds it at the spec's limit (gVisor: the sentry's host threads
// for that many processes, runsc.ts), the daemon and a sibling sandbox keep
// answering, and destroy ends every process of it (the cgroup goes, and
// the suite's leak scan finds no process left). Without the pids limit the
// bomb takes the host's pid space: the cap check and the "limit was hit"
// count fail. VMs: the guest kernel is the boundary and QEMU's host cgroup
// is capped (host-limits.test.ts); a TCG guest under a fork bomb is not run.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { runscUnusable } from "../helpers/runsc.js";
import { bombStand, type BombStand } from "../helpers/bomb-stand.js";
import { readCgroupNumber, sandboxCgroupFile } from "../helpers/sandbox-cgroup.js";
import { request } from "../helpers/daemon.js";
import { HOST_THREADS_PER_PROCESS, SENTRY_THREADS } from "../../src/backends/gvisor/runsc.js";

const PIDS = 64;

for (const backend of ["container", "gvisor"] as const) {
  describe(`fork bomb, ${backend}`, async () => {
    const skip = backend === "gvisor" ? await runscUnusable() : undefined;
    let x: BombStand;
    before(async () => {
      if (!skip) x = await bombStand(`forkbomb-${backend}`, backend, { pids: PIDS, memory: "256M" });
    });
    after(async () => {
      if (!skip) await x.close();
    });

    it(`holds the bomb at its pids limit; the host, the daemon and a sibling are unharmed`, { skip }, async () => {
      const max = sandboxCgroupFile(x.t, x.attacker, "pids", "pids.max")!;
      const current = sandboxCgroupFile(x.t, x.attacker, "pids", "pids.current")!;
      const events = sandboxCgroupFile(x.t, x.attacker, "pids", "pids.events");
      const limit = backend === "gvisor" ? PIDS * HOST_THREADS_PER_PROCESS + SENTRY_THREADS : PIDS;
      assert.equal(readCgroupNumber(max), limit);
      const bomb = await x.d.sandboxes.startExec(x.attacker, { cmd: "f(){ f|f& };f" });
      // The bomb runs into the limit: forks refused (pids.events "max"), or the count at the cap.
      let [peak, refused] = [0, 0];
      for (let i = 0; i < 600 && refused === 0; i++) {
        peak = Math.max(peak, readCgroupNumber(current));
        refused = events ? readCgroupNumber(events, "max") : peak >= limit ? 1 : 0;
        await new Promise((r) => setTimeout(r, 100));
      }
      console.log(`# ${backend}: ${peak} tasks at most in the sandbox's cgroup (limit ${limit}), ${refused} forks refused so far`);
      assert.ok(refused > 0, "the bomb never reached the pids limit");
      assert.ok(peak <= limit);
      await x.assertUnharmed();
      bomb.end();
      const dir = max.slice(0, max.lastIndexOf("/"));
      const del = (await request(x.d.url, "DELETE", `/v1/sandboxes/${x.attacker}`, { key: x.key })).status;
      // gVisor: the host's limit can end the sentry itself (runsc.ts), and the
      // daemon's dead-sandbox watch then removes the ephemeral sandbox (404).
      assert.ok(del === 204 || (backend === "gvisor" && del === 404), `DELETE answered ${del}`);
      for (let i = 0; i < 200 && fs.existsSync(dir); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(!fs.existsSync(dir), "the bombed sandbox's cgroup is gone, every process in it ended");
      await x.assertUnharmed();
    });
  });
}
