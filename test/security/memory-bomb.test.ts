// Memory bomb (issue 18 part 9): a process in a sandbox doubling a string
// until it is killed. The sandbox's memory cgroup holds it at the spec's
// memory (its usage never passes the limit but by what the kernel must
// force-charge), the OOM kill happens in that
// cgroup only (the sibling's count stays 0), the daemon and the sibling
// keep answering, and on crun the agent survives to serve the next
// command (the killer takes the command: agent/native/spawn.c). Without
// the limit the bomb grows into the host's memory and the "usage <= limit"
// check fails. gVisor: the sentry and the bomb share the host cgroup; the
// sentry's own accounting may end the sandbox, which then must be reported
// as such. VMs: host-limits.test.ts (QEMU's host cgroup under a guest bomb).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { runscUnusable } from "../helpers/runsc.js";
import { bombStand, type BombStand } from "../helpers/bomb-stand.js";
import { readCgroupNumber, sandboxCgroupFile } from "../helpers/sandbox-cgroup.js";
import { httpExec } from "../helpers/daemon.js";

const MEMORY = 64 * 1024 ** 2;
/**
 * What the cgroup's peak may pass its limit by: the kernel force-charges
 * some allocations it must not fail (__GFP_NOFAIL, and kernel memory on
 * the way to an OOM kill), seen once as one page over under gVisor. A
 * bomb the limit did not hold would pass it by its whole growth.
 */
const FORCED_CHARGE_SLACK = 1024 ** 2;

for (const backend of ["container", "gvisor"] as const) {
  describe(`memory bomb, ${backend}`, async () => {
    const skip = backend === "gvisor" ? await runscUnusable() : undefined;
    let x: BombStand;
    before(async () => {
      if (!skip) x = await bombStand(`membomb-${backend}`, backend, { memory: MEMORY });
    });
    after(async () => {
      if (!skip) await x.close();
    });

    it("keeps the bomb in its memory cgroup and the OOM kill in it", { skip }, async () => {
      const limitFile = sandboxCgroupFile(x.t, x.attacker, "memory", "memory.limit_in_bytes", "memory.max")!;
      const peakFile = sandboxCgroupFile(x.t, x.attacker, "memory", "memory.max_usage_in_bytes", "memory.peak");
      const oom = (id: string) => {
        const f = sandboxCgroupFile(x.t, id, "memory", "memory.oom_control", "memory.events");
        return f ? readCgroupNumber(f, "oom_kill") : NaN;
      };
      assert.equal(readCgroupNumber(limitFile), MEMORY);
      const r = await httpExec(x.d.url, x.key, x.attacker, `awk 'BEGIN { s = "x"; while (1) s = s s }'`);
      // (gVisor: the sandbox may be gone already, its cgroup with it: the daemon's dead-sandbox watch removed it.)
      const peak = peakFile ? readIfThere(() => readCgroupNumber(peakFile)) : undefined;
      console.log(`# ${backend}: bomb ended with HTTP ${r.status}, ${JSON.stringify(r.exit)}; cgroup peak ${peak === undefined ? "?" : (peak / 1048576).toFixed(1)} MiB of ${MEMORY / 1048576}; OOM kills: attacker ${oom(x.attacker)}, sibling ${oom(x.sibling)}`);
      if (peak !== undefined) assert.ok(peak <= MEMORY + FORCED_CHARGE_SLACK, `the sandbox's cgroup reached ${peak} bytes`);
      assert.equal(oom(x.sibling), 0, "an OOM kill in the sibling's cgroup");
      await x.assertUnharmed();
      if (backend === "container") {
        assert.deepEqual([r.exit?.["signal"], r.exit?.["oomKilled"]], [9, true], "the bomb was OOM-killed");
        assert.ok(oom(x.attacker) >= 1);
        const after = await httpExec(x.d.url, x.key, x.attacker, "echo alive");
        assert.equal(after.stdout, "alive\n", "the agent survived its sandbox's OOM");
      } else {
        // Measured: the host's OOM killer takes the sentry (the largest
        // process of the cgroup), and the sandbox with it, reported so.
        const e = r.exit as { type?: string; signal?: number; error?: { code?: string } } | undefined;
        assert.ok(e?.signal === 9 || e?.error?.code === "sandbox_not_running", JSON.stringify(e));
      }
    });
  });
}

/** What `read` gives, or undefined when its file has gone meanwhile. */
function readIfThere(read: () => number): number | undefined {
  try {
    return read();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}
