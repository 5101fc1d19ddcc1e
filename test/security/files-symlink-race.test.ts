// Symlink races on the files API (CVE-2018-15664 class, docker cp; issue
// 18 part 9): while a process in the sandbox flips a path between a
// directory and a symlink to "/" or "/proc/1/root/..", the files API
// (read, write, list, stat, remove, rename, mkdir, watch) works on paths
// through it, with "../" too. The agent resolves every path with openat2
// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS against its root fd
// (agent/native/files.c ropen, rename.c, watch.c): the kernel keeps ".."
// and absolute links inside the root whatever is swapped in meanwhile and
// refuses magic links. A canary on the host, at the path the sandbox's
// paths name, is never read back, changed, joined or reported by a watch.
// A resolver that followed the link out (or a daemon-side path join) would
// read the canary or change its directory. gVisor 2022-12 has no openat2:
// there the agent walks each path itself under the same rules, fd by fd
// (agent/native/resolve.c), which this case tests on gVisor.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { freshState, type TestState } from "../helpers/state.js";
import { runscUnusable } from "../helpers/runsc.js";
import type { WatchEvent } from "../../src/agent/client-types.js";

for (const [backend, rounds] of [
  ["container", 200],
  // A TCG guest: fewer rounds, the same paths.
  ["vm", 30],
  ["gvisor", 100],
] as const) {
  describe(`files API under a symlink race, ${backend}`, { skip: backend === "gvisor" ? await runscUnusable() : false }, () => {
    let t: TestState;
    let hostDir: string;
    const canary = `host-canary-${randomBytes(8).toString("hex")}`;
    before(async () => {
      t = await freshState(`symrace-${backend}`);
      hostDir = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-canary-"));
      await fsp.writeFile(path.join(hostDir, "secret"), canary);
    });
    after(async () => {
      await t.close();
      await fsp.rm(hostDir, { recursive: true, force: true });
    });

    it("never reaches the host's file through the flipping path", async () => {
      const id = (await t.s.create({ template: "busybox", backend, resources: { memory: "256M" } })).id;
      const secretStat = fs.statSync(path.join(hostDir, "secret"));
      // The flipper: x a directory holding a decoy at the canary's host
      // path, then a link to /, then to /proc/1/root/..; the sandbox's own
      // / has a decoy there too, so reads through the link succeed, inside.
      const decoy = `mkdir -p ${hostDir}; [ -e ${hostDir}/secret ] || echo decoy > ${hostDir}/secret`;
      const flip = await t.s.startExec(id, {
        cmd: `mkdir -p /work && cd /work && while :; do ${decoy}; rm -rf x; mkdir -p x${hostDir} && echo decoy > x${hostDir}/secret; rm -rf x; ln -s / x; rm -f x; ln -s /proc/1/root/.. x; rm -f x; done`,
      });
      const agent = await t.s.agent(id);
      const seen: WatchEvent[] = [];
      const targets = [`/work/x${hostDir}/secret`, `/work/x/../../..${hostDir}/secret`, `/work/x/proc/1/root${hostDir}/secret`, `../../..${hostDir}/secret`];
      let [reads, writes, lists] = [0, 0, 0];
      for (let i = 0; i < rounds; i++) {
        const p = targets[i % targets.length]!;
        const dir = path.posix.dirname(p);
        const read = await agent.readFileBuffer(p).catch(() => undefined);
        if (read) {
          reads++;
          assert.notEqual(read.toString(), canary, `read the host's canary through ${p}`);
        }
        if (await agent.writeFile(p, "sandbox-wrote").then(() => true, () => false)) writes++;
        const entries = await agent.list(dir).catch(() => undefined);
        if (entries) lists++;
        const st = await agent.stat(p).catch(() => undefined);
        if (st) assert.ok(!(st.size === secretStat.size && (st as { ino?: number }).ino === secretStat.ino), `stat of ${p} is the host's canary`);
        await agent.remove(p).catch(() => undefined);
        await agent.rename(p, "/work/moved").catch(() => undefined);
        await agent.mkdir(`${dir}/made`).catch(() => undefined);
        if (i % 10 === 0) {
          const w = agent.watch(dir, { recursive: false }, (e) => void seen.push(e));
          if (await w.ready.then(() => true, () => false)) {
            await fsp.writeFile(path.join(hostDir, `host-${i}`), "x");
            await new Promise((r) => setTimeout(r, 50));
            await fsp.rm(path.join(hostDir, `host-${i}`));
            await w.stop();
          }
        }
      }
      flip.end();
      console.log(`# ${backend}: ${rounds} rounds, ${reads} reads, ${writes} writes, ${lists} listings went through (all inside the sandbox)`);
      assert.ok(reads > 0, "no read went through: the race was not run");
      assert.equal(await fsp.readFile(path.join(hostDir, "secret"), "utf8"), canary, "the host's canary changed");
      assert.deepEqual(await fsp.readdir(hostDir), ["secret"], "the host's canary directory changed");
      assert.deepEqual(seen.filter((e) => e.name.startsWith("host-")), [], "a watch reported the host's directory");
      await t.s.destroy(id);
    });
  });
}
