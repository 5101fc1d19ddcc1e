// Issue 18: "after 2,000 create/exec/destroy cycles ... nothing is left".
// 2,000 container sandboxes (every tenth on the nat network, so network
// slots, links and nftables rules churn too) are created, run a command
// and are destroyed, four at a time; the suite's close() then scans for
// anything left: mounts, cgroups, processes, netns, links, nftables
// tables, files under the state dir, rows. Loop devices are counted here
// too (persistent disks are ext4 images on them), as are corrald-side
// open fds, which would grow with a leaked agent connection.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { freshState, type TestState } from "../helpers/state.js";

const CYCLES = 2000;
const AT_ONCE = 4;

const openFds = () => fs.readdirSync("/proc/self/fd").length;
/** Loop devices backed by a file under `dir` (this suite's: others running beside it make and free their own). */
const loopDevices = (dir: string) =>
  fs.readdirSync("/sys/block").filter((d) => {
    try {
      return d.startsWith("loop") && fs.readFileSync(`/sys/block/${d}/loop/backing_file`, "utf8").startsWith(dir);
    } catch {
      return false; // not bound to a file, or freed meanwhile
    }
  }).length;

describe("2,000 create/exec/destroy cycles", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("churn");
  });
  after(async () => t?.close());

  it("leaves nothing behind: no mount, cgroup, process, link, rule, row, file, loop device or fd", async () => {
    // One first cycle of each kind, so lazily opened things (the store, the network's bridge and resolver) are counted before.
    for (const network of ["none", "nat"] as const) {
      const sb = await t.s.create({ template: "busybox", network });
      await t.s.destroy(sb.id);
    }
    const fds = openFds();
    let next = 0;
    let failed: unknown;
    // A failing cycle stops every worker before the suite's close() runs (none still creating then).
    const worker = async () => {
      for (let i = next++; i < CYCLES && failed === undefined; i = next++) {
        await cycle(i).catch((e: unknown) => (failed ??= e));
      }
    };
    const cycle = async (i: number) => {
      const persistent = i % 50 === 7;
      const sb = await t.s.create({
        template: "busybox",
        network: i % 10 === 3 ? "nat" : "none",
        ...(persistent ? { lifetime: { mode: "persistent" as const }, resources: { disk: "16M" } } : {}),
      });
      const r = await t.s.exec(sb.id, { argv: ["sh", "-c", "echo $$ > /tmp/pid; cat /tmp/pid"] });
      assert.equal(r.exitCode, 0, `cycle ${i}`);
      await t.s.destroy(sb.id);
    };
    await Promise.all(Array.from({ length: AT_ONCE }, worker));
    if (failed !== undefined) throw failed;
    assert.equal((await t.s.list()).length, 0);
    assert.equal(loopDevices(fs.realpathSync(t.stateDir)), 0, "loop devices left");
    // A few fds may come and go with timers and sockets in flight; a leak per cycle would be thousands.
    assert.ok(openFds() <= fds + 8, `open fds grew from ${fds} to ${openFds()}`);
  });
});
