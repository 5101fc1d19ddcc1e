// fd exhaustion (issue 18 part 9): processes in a sandbox open fds until
// the kernel refuses. Each holds at most its RLIMIT_NOFILE (the hard
// limit, which sandbox code can reach but not raise: no CAP_SYS_RESOURCE);
// the sandbox as a whole at most what its memory cgroup can pay for (the
// fds' kernel memory is charged to it), far from the host's file-max; the
// agent keeps serving exec meanwhile and after; and corrald holds no more
// fds after a run of execs than before (an agent connection leaked per
// exec would show). It caught the agent being OOM-killed: its -1000
// oom_score_adj needs CAP_SYS_RESOURCE in the host's user namespace, so in
// a container it was 0, and holders whose memory is all kernel objects (no
// RSS) left the 128 KiB agent the largest process; now every command runs
// at oom_score_adj 500 (agent/native/spawn.c). gVisor: the sentry keeps the
// fds, so the host sees none of them; the same limits hold inside.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { freshState, type TestState } from "../helpers/state.js";
import { httpExec, request, testDaemon } from "../helpers/daemon.js";
import { runscUnusable } from "../helpers/runsc.js";
import { buildProbe, copyIn } from "../helpers/probe.js";
import { NOFILE_HARD } from "../../src/backends/container/oci-config.js";
import type { Daemon } from "../../src/server/daemon.js";

const EMFILE = 24;
/**
 * Holders: 100 on crun; 4 on gVisor, whose sentry (ptrace platform, its
 * Go heap under the same memory cap) gave no report from 100 in 180 s.
 */
const HOLDERS = { container: 100, gvisor: 4 } as const;
/** 100 holders x 8192 fds would need ~170 MiB of kernel memory (65 k fds took 14 MiB here): past this cap. */
const MEMORY = "128M";
const EXECS = 40;

const fileNr = () => Number(fs.readFileSync("/proc/sys/fs/file-nr", "utf8").split(/\s+/)[0]);
const fileMax = () => Number(fs.readFileSync("/proc/sys/fs/file-max", "utf8").trim());
const ownFds = () => fs.readdirSync("/proc/self/fd").length;

for (const backend of ["container", "gvisor"] as const) {
  describe(`fd exhaustion, ${backend}`, async () => {
    const holderCount = HOLDERS[backend];
    const skip = backend === "gvisor" ? await runscUnusable() : undefined;
    let t: TestState;
    let d: Daemon;
    let key: string;
    let probe: Awaited<ReturnType<typeof buildProbe>>;
    before(async () => {
      if (skip) return;
      probe = await buildProbe("fd-probe");
      t = await freshState(`fds-${backend}`);
      d = await testDaemon(t);
      key = d.sandboxes.tenants.createKey("fds").key;
    });
    after(async () => {
      if (skip) return;
      await d.close();
      await t.close();
      await probe.remove();
    });

    it(`holds each process to its fd limit and the sandbox to its memory, and the agent serves on`, { skip }, async () => {
      const created = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", backend, resources: { memory: MEMORY, pids: 256 } } });
      assert.equal(created.status, 201, created.text);
      const id = created.json<{ id: string }>().id;
      await copyIn(d.sandboxes, id, probe.file, "/tmp/fd-probe");
      // corrald is this process (testDaemon): its fds with one agent connection already open.
      assert.equal((await httpExec(d.url, key, id, "true")).exitCode, 0);
      const fdsBefore = ownFds();
      const nrBefore = fileNr();
      let out = "";
      const holders = await d.sandboxes.startExec(id, { cmd: `/tmp/fd-probe ${holderCount}`, stdin: true }, { onStdout: (b) => (out += b.toString()) });
      // Until every holder has reported or, once one has, none has for 5 s
      // (the rest were OOM-killed); gVisor's sentry under ptrace takes its time.
      const start = Date.now();
      let [lines, since, peak] = [0, Date.now(), 0];
      while (lines < holderCount && (lines === 0 ? Date.now() - start < 180_000 : Date.now() - since < 5000)) {
        await new Promise((r) => setTimeout(r, 200));
        peak = Math.max(peak, fileNr() - nrBefore);
        const n = out.split("\n").length - 1;
        if (n !== lines) [lines, since] = [n, Date.now()];
      }
      const reports = out.trim().split("\n").filter((l) => l.startsWith("open ")).map((l) => l.split(" ").map(Number) as [number, number, number, number]);
      assert.ok(reports.length > 0, `no holder reported: ${out}`);
      for (const [, count, errno, hard] of reports) {
        // The three stdio fds count too; memory pressure can stop one earlier (ENOMEM), never later.
        assert.ok(count + 3 <= NOFILE_HARD, `a process held ${count + 3} fds, its limit is ${NOFILE_HARD}`);
        assert.equal(hard, NOFILE_HARD);
        if (count + 3 === NOFILE_HARD) assert.equal(errno, EMFILE);
      }
      console.log(`# ${backend}: ${reports.length} of ${holderCount} holders reported (${reports.filter((r) => r[1] + 3 === NOFILE_HARD).length} reached ${NOFILE_HARD}); host file-nr +${peak} at most (file-max ${fileMax()})`);
      // The whole sandbox: what its memory cap pays for, not pids x NOFILE_HARD (2 M here).
      assert.ok(peak < fileMax() / 2, `the sandbox took ${peak} of the host's ${fileMax()} file handles`);
      // The agent serves while the fds are held: it answers every exec. At
      // the memory cap a new command may itself be the OOM killer's pick
      // (commands start at oom_score_adj 500, below the agent): killed, not
      // unanswered. Once the fds go, every command runs (below).
      let ran = 0;
      for (let i = 0; i < 5; i++) {
        const r = await httpExec(d.url, key, id, "echo alive");
        assert.equal(r.status, 200);
        if (r.exitCode === 0 && r.stdout === "alive\n") ran++;
        else assert.equal(r.exitCode, null, `neither ran nor was killed: ${JSON.stringify(r)}`);
      }
      console.log(`# ${backend}: ${ran} of 5 commands ran while the fds were held (the others OOM-killed)`);
      await holders.handle.closeStdin();
      await holders.outcome;
      holders.end();
      // ... and after, and corrald's own fds do not grow with its execs.
      for (let i = 0; i < EXECS; i++) assert.equal((await httpExec(d.url, key, id, "echo alive")).stdout, "alive\n");
      const grew = ownFds() - fdsBefore;
      assert.ok(grew < EXECS / 4, `corrald holds ${grew} more fds after ${EXECS} execs`);
      assert.equal((await request(d.url, "DELETE", `/v1/sandboxes/${id}`, { key })).status, 204);
    });
  });
}
