// Behaviour every backend must show the same way: the same cases run
// against a container (shared-container.test.ts), a microVM
// (vm-sandbox.test.ts) and a gVisor container (shared-gvisor.test.ts, which
// marks the cases gVisor cannot pass and why). Callers see one agent
// protocol whatever realises the sandbox, so these are written against
// Sandboxes and AgentClient only.
import { describe, it as test, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { freshState, type TestState } from "../../helpers/state.js";
import type { SandboxInfo } from "../../../src/runtime/sandboxes.js";
import type { BackendKind } from "../../../src/backends/backend.js";
import { interactiveCases } from "./interactive-cases.js";

export type BackendName = BackendKind;

export interface CaseOptions {
  /** Shared cases that cannot apply to this backend, by title, with the reason (printed as the skip's). */
  readonly notApplicable?: Readonly<Record<string, string>>;
  /** Why the whole suite cannot run on this host (printed); undefined: it runs. */
  readonly skip?: string | undefined;
}

export interface SharedContext {
  readonly t: TestState;
  readonly sb: SandboxInfo;
  sh(cmd: string, id?: string): Promise<{ exitCode: number | null; signal: number | null; stdout: string; stderr: string }>;
}

/**
 * Defines the shared cases in a describe block of their own; `extra` adds
 * backend-specific cases that reuse the same state and sandbox (a VM boot
 * is seconds under TCG, so suites share one).
 */
export function sandboxCases(backend: BackendName, extra?: (ctx: () => SharedContext) => void, opts: CaseOptions = {}): void {
  const notApplicable = new Map(Object.entries(opts.notApplicable ?? {}));
  // A case that cannot apply is skipped with its reason, so the report says which and why.
  const it = (title: string, fn: (tc: TestContext) => Promise<void>) => {
    const why = notApplicable.get(title);
    notApplicable.delete(title);
    return why === undefined ? test(title, fn) : test(title, { skip: `not applicable to ${backend}: ${why}` }, fn);
  };
  if (opts.skip) console.log(`# ${backend} sandbox (shared cases) skipped: ${opts.skip}`);
  describe(`${backend} sandbox (shared cases)`, opts.skip ? { skip: opts.skip } : {}, () => {
    let t: TestState;
    let sb: SandboxInfo;
    const sh = async (cmd: string, id = sb.id) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const r = await t.s.exec(id, { cmd }, { onStdout: (b) => out.push(b), onStderr: (b) => err.push(b) });
      return { exitCode: r.exitCode, signal: r.signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
    };

    before(async () => {
      // VMs as the daemon runs them (a spare shim, shared agent connections).
      t = await freshState(`shared-${backend}`, { longLived: backend === "vm" });
      sb = await t.s.create({ template: "busybox", backend, name: `shared-${backend}`, env: { GREETING: "hello" }, workdir: "/tmp", resources: { memory: "128M" } });
    });
    after(async () => t.close());

    it("runs commands with exit codes, stdout and stderr", async () => {
      const r = await sh("echo out; echo err >&2; exit 7");
      assert.deepEqual([r.exitCode, r.stdout, r.stderr], [7, "out\n", "err\n"]);
      assert.equal((await t.s.exec(sb.id, { argv: ["/bin/true"] })).exitCode, 0);
      assert.equal((await t.s.exec(sb.id, { argv: ["/bin/false"] })).exitCode, 1);
    });

    it("says which command cannot start and why", async () => {
      await assert.rejects(t.s.exec(sb.id, { argv: ["nosuchcmd"] }), {
        errno: "ENOENT",
        message: "cannot execute nosuchcmd: No such file or directory",
      });
    });

    it("has the agent as pid 1 and its name as hostname", async () => {
      const r = await sh("tr '\\0' ' ' < /proc/1/cmdline; echo; hostname");
      const [cmdline, host] = r.stdout.trim().split("\n");
      assert.match(cmdline ?? "", /corral-agent|\/run\/corral\/agent/);
      assert.equal(host, `shared-${backend}`);
    });

    it("applies the spec's env and workdir, and the request's over them", async () => {
      assert.equal((await sh("echo $GREETING $(pwd)")).stdout, "hello /tmp\n");
      const out: Buffer[] = [];
      await t.s.exec(sb.id, { cmd: "echo $GREETING $(pwd)", env: { GREETING: "bye" }, cwd: "/" }, { onStdout: (b) => out.push(b) });
      assert.equal(Buffer.concat(out).toString(), "bye /\n");
    });

    it("round-trips a 5 MiB file with the same hash", async () => {
      const data = randomBytes(5 * 1024 * 1024);
      const sum = createHash("sha256").update(data).digest("hex");
      const c = await t.s.agent(sb.id);
      try {
        assert.equal((await c.writeFile("/work/blob.bin", data, { mkdirs: true })).size, data.length);
        assert.equal(createHash("sha256").update(await c.readFileBuffer("/work/blob.bin")).digest("hex"), sum);
      } finally {
        c.close();
      }
      assert.equal((await sh("sha256sum /work/blob.bin")).stdout.split(" ")[0], sum);
    });

    it("stats, lists, makes and removes directories", async () => {
      const c = await t.s.agent(sb.id);
      try {
        await c.mkdir("/work/a/b", { parents: true });
        await c.writeFile("/work/a/b/f.txt", "x");
        const st = await c.stat("/work/a/b/f.txt");
        assert.deepEqual([st.type, st.size], ["file", 1]);
        assert.deepEqual((await c.list("/work/a/b")).map((e) => e.name), ["f.txt"]);
        await assert.rejects(c.remove("/work/a"), /ENOTEMPTY|not empty/i);
        await c.remove("/work/a", { recursive: true });
        await assert.rejects(c.stat("/work/a"), (e: Error & { errno?: string }) => e.errno === "ENOENT");
      } finally {
        c.close();
      }
    });

    it("feeds stdin and times out commands", async () => {
      const c = await t.s.agent(sb.id);
      try {
        const out: Buffer[] = [];
        const h = c.exec({ argv: ["wc", "-c"], stdin: true }, { onStdout: (b) => out.push(b) });
        await h.writeStdin(Buffer.alloc(300_000, 1));
        await h.closeStdin();
        assert.equal((await h.result).exitCode, 0);
        assert.equal(Buffer.concat(out).toString().trim(), "300000");
        const slow = await c.run({ cmd: "sleep 30", timeoutMs: 500 });
        assert.deepEqual([slow.timedOut, slow.signal], [true, 9]);
      } finally {
        c.close();
      }
    });

    it("serves many commands at once, on one connection and on several", async () => {
      const c = await t.s.agent(sb.id);
      try {
        const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => c.run({ cmd: `echo ${i}` })));
        runs.forEach((r, i) => assert.equal(r.stdout.toString(), `${i}\n`));
      } finally {
        c.close();
      }
      const many = await Promise.all(Array.from({ length: 6 }, (_, i) => sh(`echo conn${i}`)));
      many.forEach((r, i) => assert.equal(r.stdout, `conn${i}\n`));
    });

    it("kills a command whose connection is lost, unless it asked to outlive it", async () => {
      await sh("rm -f /tmp/victim.pid");
      const c = await t.s.agent(sb.id);
      const h = c.exec({ cmd: "echo $$ > /tmp/victim.pid.new && mv /tmp/victim.pid.new /tmp/victim.pid; exec sleep 300" }, {});
      void h.result.catch(() => {});
      // Running (its pid written) before its connection goes, however slow the host.
      for (let i = 0; i < 400 && (await sh("cat /tmp/victim.pid 2>/dev/null")).stdout === ""; i++) await new Promise((r) => setTimeout(r, 50));
      assert.notEqual((await sh("cat /tmp/victim.pid")).stdout, "");
      c.close();
      let alive = "alive\n";
      for (let i = 0; i < 200 && alive === "alive\n"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        alive = (await sh("kill -0 $(cat /tmp/victim.pid) 2>/dev/null && echo alive || echo gone")).stdout;
      }
      assert.equal(alive, "gone\n");
    });

    it("holds the memory size: allocating 200 MiB in 128 MiB fails, and the sandbox carries on", async () => {
      const r = await t.s.exec(sb.id, { argv: ["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"] });
      assert.ok(r.signal === 9 || (r.exitCode !== null && r.exitCode !== 0), `dd ended with ${JSON.stringify(r)}`);
      // Killed by the OOM killer (the cgroup's, or the guest kernel's in a VM): said so.
      assert.equal(r.oomKilled, r.signal === 9, `dd ended with ${JSON.stringify(r)}`);
      assert.equal((await sh("echo alive")).stdout, "alive\n");
      assert.equal((await t.s.exec(sb.id, { argv: ["dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1"] })).exitCode, 0);
    });

    it("reports a command the OOM killer ends as oomKilled, and a plain SIGKILL as not", async () => {
      // A shell doubling a string until the sandbox's memory runs out: the
      // cgroup's OOM killer, or the guest kernel's in a VM, ends it.
      const r = await t.s.exec(sb.id, { argv: ["sh", "-c", 'a=x; while :; do a="$a$a"; done'] });
      assert.deepEqual([r.signal, r.oomKilled], [9, true], JSON.stringify(r));
      assert.ok((await t.s.stats(sb.id)).oomKills >= 1);
      const k = await t.s.exec(sb.id, { cmd: "kill -9 $$" });
      assert.deepEqual([k.signal, k.oomKilled], [9, false], JSON.stringify(k));
      assert.equal((await sh("echo alive")).stdout, "alive\n");
    });

    it("holds the pids limit: forks beyond it fail, and the sandbox carries on", async () => {
      // A container's cgroup, or the guest cgroup corral-init puts a VM's agent in.
      const small = await t.s.create({ template: "busybox", backend, resources: { pids: 64, memory: "128M" } });
      try {
        const r = await t.s.exec(small.id, { cmd: "for i in $(seq 100); do sleep 30 & done" });
        assert.notEqual(r.exitCode, 0, "100 processes started under a limit of 64"); // the shell's fork failed
        const { pids } = await t.s.stats(small.id);
        assert.ok(pids <= 64 && pids >= 50, `${pids} processes under a limit of 64`);
        for (let i = 0; i < 50 && (await t.s.stats(small.id)).pids > 2; i++) await t.s.exec(small.id, { cmd: "kill -9 -1; true" }).catch(() => undefined);
        assert.equal((await sh("echo ok", small.id)).stdout, "ok\n");
      } finally {
        await t.s.destroy(small.id);
      }
    });

    it("holds a fractional vcpus to its share of CPU time", async () => {
      // A container's CFS quota; a VM's vCPU count is the ceiling and its QEMU is held to the share.
      const half = await t.s.create({ template: "busybox", backend, resources: { vcpus: 0.5, memory: "128M" } });
      try {
        const before = (await t.s.stats(half.id)).cpuNanos;
        const started = process.hrtime.bigint();
        await t.s.exec(half.id, { cmd: "timeout 2 sh -c 'while :; do :; done'; true" });
        const share = ((await t.s.stats(half.id)).cpuNanos - before) / Number(process.hrtime.bigint() - started);
        assert.ok(share < 0.7, `used ${share.toFixed(2)} of a core with a 0.5 share`);
      } finally {
        await t.s.destroy(half.id);
      }
    });

    it("never lets one sandbox's writes reach the template or another sandbox", async () => {
      assert.equal((await sh("echo mine > /bin/added && rm /bin/cat && echo ok")).stdout, "ok\n");
      const other = await t.s.create({ template: "busybox", backend });
      assert.equal((await sh("test ! -e /bin/added && test -e /bin/cat && echo clean", other.id)).stdout, "clean\n");
      await t.s.destroy(other.id);
    });

    interactiveCases(it, () => ({ t, sb, sh }));
    extra?.(() => ({ t, sb, sh }));
    // A title in notApplicable that names no case is a typo that would let a case run unmarked.
    if (notApplicable.size) throw new Error(`notApplicable names no shared case: ${[...notApplicable.keys()].join("; ")}`);
  });
}
