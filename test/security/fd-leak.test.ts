// fd leaks and cwd through /proc/self/fd (CVE-2024-21626 class, issue 18
// part 9): runc leaked a host directory fd (/sys/fs/cgroup) into the
// container's process, and a process given cwd /proc/self/fd/7 started
// with its working directory on the host. Here commands are the agent's
// children, which chdir after clone and before execve, so they hold the
// agent's fds at that moment: every fd the agent has must lie inside the
// sandbox. Checked: (1) every fd of an exec'd process names a file the
// sandbox reaches by that name (same device and inode) or no path at all
// (pipes, sockets); (2) the agent's fds, read from the host (its
// /proc/<pid>/fd is not the sandbox's to read: it is undumpable), and an
// exec given cwd /proc/self/fd/N or /proc/1/fd/N for each of them and
// more either fails or starts inside the sandbox: climbing ".." from it
// ends at the sandbox's "/". A leaked host directory fails (2): its ".."
// chain ends at the host's root.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { freshState, type TestState } from "../helpers/state.js";
import { shOk } from "../helpers/exec.js";
import { runscUnusable } from "../helpers/runsc.js";
import { sandboxCgroupFile } from "../helpers/sandbox-cgroup.js";

/** Prints "N TARGET same|other" per fd of the shell: other when the name does not lead to the same file inside. */
const OWN_FDS =
  'for f in /proc/$$/fd/*; do n=${f##*/}; l=$(readlink $f); case "$l" in /*) if [ "$(stat -L -c %d:%i $f)" = "$(stat -c %d:%i "$l" 2>/dev/null)" ]; then s=same; else s=other; fi;; *) s=anon;; esac; echo "$n $l $s"; done';

/** 64 ".." from the working directory, then where it ended and the sandbox's root. */
const CLIMB = 'for i in $(seq 64); do cd .. || exit 9; done; echo "$(stat -c %d:%i .) $(stat -c %d:%i /)"';

for (const backend of ["container", "gvisor", "vm"] as const) {
  describe(`fd leaks and cwd through /proc/self/fd, ${backend}`, async () => {
    const skip = backend === "gvisor" ? await runscUnusable() : undefined;
    let t: TestState;
    let id: string;
    before(async () => {
      if (skip) return;
      t = await freshState(`fdleak-${backend}`);
      id = (await t.s.create({ template: "busybox", backend, resources: { memory: "256M" } })).id;
    });
    after(async () => {
      if (!skip) await t.close();
    });

    it("gives a command no fd of a file outside the sandbox", { skip }, async () => {
      const out = await shOk(t.s, id, OWN_FDS);
      const fds = out.trim().split("\n");
      assert.ok(fds.length >= 3, out);
      for (const l of fds) assert.doesNotMatch(l, / other$/, `fd naming a file the sandbox cannot reach by that name: ${l}`);
    });

    it("starts no command outside the sandbox through a /proc fd cwd", { skip }, async () => {
      // The agent's fds as the host sees them (a container's agent is a host process).
      let agentFds: number[] = [];
      if (backend === "container") {
        const procs = fs.readFileSync(sandboxCgroupFile(t, id, "pids", "cgroup.procs")!, "utf8").trim().split("\n");
        const pid = procs.find((p) => {
          try {
            return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("corral-agent");
          } catch {
            return false; // it ended since the list was read
          }
        });
        assert.ok(pid, "the agent is in the sandbox's cgroup");
        agentFds = fs.readdirSync(`/proc/${pid}/fd`).map(Number);
        console.log(`# ${backend}: the agent's fds from the host: ${agentFds.map((n) => `${n}=${linkOf(`/proc/${pid}/fd/${n}`)}`).join(" ")}`);
      }
      const numbers = [...new Set([...agentFds, ...Array.from({ length: 16 }, (_, i) => i)])].sort((a, b) => a - b);
      let started = 0;
      for (const n of numbers) {
        for (const cwd of [`/proc/self/fd/${n}`, `/proc/1/fd/${n}`, `/proc/self/fd/${n}/..`]) {
          const out: Buffer[] = [];
          const r = await t.s.exec(id, { cmd: CLIMB, cwd }, { onStdout: (b) => out.push(b) }).catch((e: Error) => e);
          if (r instanceof Error || r.exitCode !== 0) continue; // refused: the directory is not there for it
          started++;
          const [ended, root] = Buffer.concat(out).toString().trim().split(" ");
          assert.equal(ended, root, `cwd ${cwd} started a command whose ".." chain leaves the sandbox`);
        }
      }
      console.log(`# ${backend}: ${started} of ${numbers.length * 3} /proc fd cwds started a command, all inside`);
    });
  });
}

/** Where an fd points, or "(closed)" when the agent closed it since it was listed (a connection ending). */
function linkOf(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch {
    return "(closed)";
  }
}
