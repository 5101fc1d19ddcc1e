// The shared backend cases (shared/sandbox-cases.ts) on gVisor (runsc),
// with the cases gVisor cannot pass marked and why, and what only gVisor
// has: its own kernel, the syscall policy applied inside the sentry, a
// sandbox over its memory ended as a whole, rename through runsc exec.
import { it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import { sandboxCases } from "./shared/sandbox-cases.js";
import { runscUnusable } from "../helpers/runsc.js";

const WHOLE_SANDBOX_OOM =
  "gVisor's sentry holds the memory of every process of the sandbox in one host process, so the host cgroup's OOM killer ends the whole sandbox, not the one command (tested below)";


sandboxCases(
  "gvisor",
  (ctx) => {
    it("runs on gVisor's kernel, not the host's", async () => {
      // The sentry answers uname and /proc/version itself (syslog, which dmesg needs, is in the seccomp profile's denied list).
      const r = await ctx().sh("uname -r; cat /proc/version");
      const [release, version] = r.stdout.trim().split("\n");
      assert.notEqual(release, os.release());
      assert.notEqual(version, fs.readFileSync("/proc/version", "utf8").trim());
    });

    it("applies the seccomp profile inside the sentry: a new user namespace is refused", async () => {
      const r = await ctx().sh("unshare -U true; echo $?");
      assert.equal(r.stdout, "1\n");
      assert.match(r.stderr, /Operation not permitted/);
    });

    it("counts the sandbox's processes, not the sentry's host threads", async () => {
      const { t, sb, sh } = ctx();
      const before = (await t.s.stats(sb.id)).pids;
      await sh("for i in 1 2 3 4 5; do sleep 30 & done");
      const after = (await t.s.stats(sb.id)).pids;
      await sh("pkill sleep; true");
      assert.equal(after - before, 5, `${before} processes, then ${after}`);
    });

    it("keeps a persistent sandbox's files across stop and start", async () => {
      const { t } = ctx();
      const pet = await t.s.create({ template: "busybox", backend: "gvisor", lifetime: { mode: "persistent" } });
      try {
        assert.equal((await ctx().sh("echo kept > /root/f && echo ok", pet.id)).stdout, "ok\n");
        assert.equal((await t.s.stop(pet.id)).status, "stopped");
        assert.equal((await t.s.start(pet.id)).status, "running");
        assert.equal((await ctx().sh("cat /root/f", pet.id)).stdout, "kept\n");
      } finally {
        await t.s.destroy(pet.id);
      }
    });

    it("ends a sandbox that goes over its memory as a whole, leaving nothing running", async () => {
      const { t } = ctx();
      const small = await t.s.create({ template: "busybox", backend: "gvisor", resources: { memory: "64M" } });
      try {
        const r = await t.s.exec(small.id, { cmd: 'a=x; while :; do a="$a$a"; done' }).catch((e: Error) => e);
        assert.ok(r instanceof Error || r.signal === 9, `the command ended with ${JSON.stringify(r)}`);
        let status = (await t.s.get(small.id)).status;
        for (let i = 0; i < 50 && status === "running"; i++) {
          await new Promise((res) => setTimeout(res, 100));
          status = (await t.s.get(small.id)).status;
        }
        assert.equal(status, "stopped");
        assert.ok((await t.s.stats(small.id).catch(() => ({ oomKills: 1 }))).oomKills >= 1);
      } finally {
        await t.s.destroy(small.id);
      }
    });

    it("renames a claimed pooled sandbox (runsc exec of hostname)", async () => {
      const { t, sh } = ctx();
      const resources = { memory: "96M" };
      const pool = t.s.pools.set("busybox", resources, 1, "gvisor");
      try {
        assert.equal((await t.s.refillPools()).started, 1);
        const claimed = await t.s.create({ template: "busybox", backend: "gvisor", name: "claimed-gv", resources });
        assert.equal(t.s.pools.waiting(pool.key).length, 0, "the pooled sandbox was handed out");
        assert.equal((await sh("hostname", claimed.id)).stdout, "claimed-gv\n");
        await t.s.destroy(claimed.id);
      } finally {
        t.s.pools.set("busybox", resources, 0, "gvisor");
        await t.s.refillPools();
      }
    });
  },
  {
    skip: await runscUnusable(),
    notApplicable: {
      "holds the memory size: allocating 200 MiB in 128 MiB fails, and the sandbox carries on": WHOLE_SANDBOX_OOM,
      "reports a command the OOM killer ends as oomKilled, and a plain SIGKILL as not": WHOLE_SANDBOX_OOM,
      "lets Ctrl-C on a terminal interrupt the foreground command, and the shell goes on":
        "gVisor 2022-12's terminal line discipline passes ^C through as a byte (isig is on, yet no SIGINT reaches the foreground process group), and the agent cannot raise it in its place: gVisor answers TIOCGPGRP on the master ENOTTY and reports tpgid 0 in /proc/PID/stat, so the foreground group is unknowable; signal and kill reach a terminal's command as on the other backends",
      "ends a flood of 100,000 new files in an overflow event":
        "gVisor 2022-12's inotify queue has no limit and never reports IN_Q_OVERFLOW: all 200,000 events arrive (measured); the queue is the sentry's, so it grows within the sandbox's own memory cap, not corrald's",
      "holds the pids limit: forks beyond it fail, and the sandbox carries on":
        "gVisor (2022-12) holds no process limit of its own; the host cgroup counts the sentry's threads (~10 per process under ptrace), so its limit is pids x 10 + 64 threads and reaching it ends the sandbox instead of failing a fork",
    },
  },
);
