// `corral exec` never buffers a command's output without bound: a reader
// that does not keep up pauses the command, one that goes away ends it and
// the CLI exits 141 without a stack trace (as `cat /dev/zero | sleep 5`
// would in a shell). On the state dir and through a daemon, with
// `cat /dev/zero` writing as fast as it can; the CLI's peak RSS (VmHWM) is
// read from /proc while it runs.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import fs from "node:fs";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { freshState, type TestState } from "../helpers/state.js";
import { localEnv, spawnCli } from "../helpers/cli.js";
import { spawnDaemon } from "../../src/server/spawn.js";

/** A CLI that buffered what cat writes would be far past this: without back-pressure it reached 340 MB (through corrald) to 750 MB (state dir) in 2 s here. */
const RSS_LIMIT_KIB = 100 * 1024;

function peakKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The CLI's exit and everything it wrote to stderr. */
function ending(child: ChildProcessWithoutNullStreams): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr += b));
  return once(child, "close").then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null, stderr }));
}

/** The sandbox's processes' command lines (a fresh CLI run that reads to its end). */
async function processes(env: NodeJS.ProcessEnv, sandbox: string): Promise<string> {
  const c = spawnCli(["exec", sandbox, "--", "ps", "-o", "args"], env);
  let out = "";
  c.stdout.on("data", (b: Buffer) => (out += b));
  const end = ending(c);
  c.stdin.end();
  assert.equal((await end).code, 0);
  return out;
}

/** Waits until `cat /dev/zero` no longer runs in the sandbox (the CLI's end killed it). */
async function catGone(env: NodeJS.ProcessEnv, sandbox: string): Promise<void> {
  let ps = "";
  for (let i = 0; i < 50; i++) {
    ps = await processes(env, sandbox);
    if (!ps.includes("cat /dev/zero")) return;
    await sleep(100);
  }
  assert.fail(`cat /dev/zero still runs after the CLI ended:\n${ps}`);
}

function cases(label: string, setup: () => Promise<{ env: NodeJS.ProcessEnv; sandbox: string }>): void {
  describe(`corral exec with a reader that lags or leaves (${label})`, () => {
    let env: NodeJS.ProcessEnv;
    let sandbox: string;
    before(async () => ({ env, sandbox } = await setup()));

    it("a reader that never reads: the CLI stays small; it closes: exit 141, no stack trace, the command ended", async () => {
      const cli = spawnCli(["exec", sandbox, "--", "cat", "/dev/zero"], env);
      cli.stdin.end();
      const end = ending(cli);
      // `| sleep 2`: nothing is read, the pipe fills.
      await sleep(2000);
      const peak = peakKiB(cli.pid!);
      cli.stdout.destroy();
      const r = await end;
      assert.ok(peak < RSS_LIMIT_KIB, `the CLI's peak RSS was ${peak} KiB`);
      assert.deepEqual(r, { code: 141, signal: null, stderr: "" });
      await catGone(env, sandbox);
    });

    it("a slow reader (about 3 MB/s): output flows and the CLI's RSS stays bounded", async () => {
      const cli = spawnCli(["exec", sandbox, "--", "cat", "/dev/zero"], env);
      cli.stdin.end();
      const end = ending(cli);
      let got = 0;
      let peak = 0;
      for (let i = 0; i < 150; i++) {
        await sleep(20);
        // One read a tick: at most the stream's buffer (64 KiB) each.
        got += (cli.stdout.read() as Buffer | null)?.length ?? 0;
        if (i % 10 === 0) peak = Math.max(peak, peakKiB(cli.pid!));
      }
      peak = Math.max(peak, peakKiB(cli.pid!));
      cli.stdout.destroy();
      const r = await end;
      assert.ok(got > 1024 * 1024, `only ${got} bytes came through in 3 s`);
      assert.ok(peak < RSS_LIMIT_KIB, `the CLI's peak RSS was ${peak} KiB after ${got} bytes`);
      assert.deepEqual([r.code, r.stderr], [141, ""]);
      await catGone(env, sandbox);
    });
  });
}

let t: TestState;
let daemon: Awaited<ReturnType<typeof spawnDaemon>> | undefined;

before(async () => {
  t = await freshState("clioutput");
  await t.s.create({ template: "busybox", name: "flood" });
});
after(async () => {
  if (daemon) {
    daemon.proc.kill("SIGTERM");
    await once(daemon.proc, "exit");
  }
  await t?.close();
});

cases("state dir", async () => ({ env: localEnv(t), sandbox: "flood" }));

// The daemon in a process of its own: while the CLI is paused the daemon
// still takes the command's output (its exec stream has no back-pressure to
// the agent yet) and holds it until the CLI leaves.
cases("through corrald", async () => {
  daemon = await spawnDaemon(t.stateDir, { CORRAL_CGROUP_PARENT: t.cgroupParent });
  const key = t.s.tenants.createKey("flood").key;
  await t.s.create({ template: "busybox", name: "flood-remote" }, { tenant: "flood" });
  return { env: { CORRAL_API_URL: daemon.url, CORRAL_API_KEY: key, CORRAL_STATE_DIR: "/nonexistent/corral" }, sandbox: "flood-remote" };
});
