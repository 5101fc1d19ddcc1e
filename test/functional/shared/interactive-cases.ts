// Interactive use, the same on every backend (called by sandbox-cases.ts
// inside its describe, on its sandbox): terminals through the agent, a
// background command joined later, directory watches, rename.
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { Screen } from "../../helpers/terminal.js";
import type { SharedContext } from "./sandbox-cases.js";

type It = (title: string, fn: (t: TestContext) => Promise<void>) => unknown;

export function interactiveCases(it: It, ctx: () => SharedContext): void {
  it("runs sh on a terminal: tty names it, stty shows its size and a resize, the exit status comes back", async () => {
    const { t, sb } = ctx();
    const screen = new Screen();
    const { handle, outcome, end } = await t.s.startExec(sb.id, { argv: ["/bin/sh"], pty: { rows: 30, cols: 100 }, env: { PS1: "$ " } }, { onStdout: (b) => screen.push(b) });
    try {
      let m = screen.mark();
      await handle.writeStdin("tty; stty size\n");
      await screen.waitFor(/\/dev\/pts\/\d+\r?\n[\s\S]*30 100/, m);
      await handle.resize({ rows: 40, cols: 120 });
      m = screen.mark();
      await handle.writeStdin("stty size\n");
      await screen.waitFor(/40 120/, m);
      await handle.writeStdin("exit 3\n");
      assert.equal((await outcome).exitCode, 3);
    } finally {
      end();
    }
  });

  it("lets Ctrl-C on a terminal interrupt the foreground command, and the shell goes on", async () => {
    const { t, sb } = ctx();
    const screen = new Screen();
    const { handle, outcome, end } = await t.s.startExec(sb.id, { argv: ["/bin/sh"], pty: { rows: 24, cols: 80 }, env: { PS1: "$ " } }, { onStdout: (b) => screen.push(b) });
    try {
      // It says so once it runs as the foreground job (the typed line shows sleep""ing): no clock guesses when.
      let m = screen.mark();
      await handle.writeStdin(`sh -c 'echo sleep""ing; exec sleep 100'; echo not-interrupted\n`);
      await screen.waitFor(/\bsleeping\r?\n/, m);
      m = screen.mark();
      await handle.writeStdin("\x03");
      // An interactive shell drops the rest of the line on SIGINT: ask on the next one.
      await handle.writeStdin("echo after $?\n");
      await screen.waitFor(/after 130/, m);
      assert.doesNotMatch(screen.all, /^not-interrupted/m); // (the echo of the line typed holds it too)
      await handle.writeStdin("exit 4\n");
      assert.equal((await outcome).exitCode, 4);
    } finally {
      end();
    }
  });

  it("opens 100 terminals in one sandbox at once", async () => {
    const { t, sb } = ctx();
    const outs = Array.from({ length: 100 }, () => "");
    const runs = await Promise.all(
      outs.map((_, k) => t.s.startExec(sb.id, { argv: ["sh", "-c", "read l; echo got-$l; stty size"], pty: { rows: 10 + k, cols: 80 } }, { onStdout: (b) => void (outs[k] += b.toString()) })),
    );
    try {
      // All 100 are open before any is given its line.
      await Promise.all(runs.map((r, k) => r.handle.writeStdin(`n${k}\n`)));
      const ends = await Promise.all(runs.map((r) => r.outcome));
      ends.forEach((e, k) => {
        assert.equal(e.exitCode, 0, `terminal ${k}: ${JSON.stringify(e)}`);
        assert.match(outs[k]!, new RegExp(`got-n${k}\\r?\\n${10 + k} 80`), `terminal ${k}`);
      });
    } finally {
      runs.forEach((r) => r.end());
    }
  });

  it("joins a background command after 2 s: its 50 lines arrive exactly once, in order", async () => {
    const { t, sb } = ctx();
    const bg = await t.s.startExec(sb.id, { cmd: "for i in $(seq 1 50); do echo $i; sleep 0.1; done", keepAlive: true, detached: true });
    const pid = await bg.handle.pid;
    bg.end(); // the starter lets go: the command runs on
    await new Promise((r) => setTimeout(r, 2000));
    const agent = await t.s.agent(sb.id);
    try {
      let text = "";
      const joined = agent.attach(pid, { onStdout: (b) => void (text += b.toString()) });
      assert.equal(await joined.pid, pid);
      assert.equal((await joined.result).exitCode, 0);
      assert.deepEqual(text.trim().split("\n"), Array.from({ length: 50 }, (_, i) => String(i + 1)));
    } finally {
      agent.close();
    }
  });

  it("watches a directory: create, write, rename and remove, each reported", async (tc) => {
    const { t, sb, sh } = ctx();
    await sh("rm -rf /tmp/watched && mkdir -p /tmp/watched/sub");
    const agent = await t.s.agent(sb.id);
    try {
      const seen: { at: number; e: string }[] = [];
      const w = agent.watch("/tmp/watched", { recursive: true }, (e) => void seen.push({ at: performance.now(), e: `${e.type} ${e.name}` }));
      await w.ready;
      const steps: [string, string][] = [
        ["echo a > /tmp/watched/sub/f", "create sub/f"],
        ["echo b >> /tmp/watched/sub/f", "write sub/f"],
        ["mv /tmp/watched/sub/f /tmp/watched/g", "rename sub/f"],
        ["rm /tmp/watched/g", "remove g"],
      ];
      const lag: string[] = [];
      for (const [cmd, want] of steps) {
        const before = performance.now();
        await sh(cmd);
        const done = performance.now();
        const find = () => seen.find((s) => s.e === want && s.at >= before);
        for (let i = 0; i < 1000 && !find(); i++) await new Promise((r) => setTimeout(r, 10));
        const hit = find();
        assert.ok(hit, `no "${want}" in ${seen.map((s) => s.e).join(", ")}`);
        lag.push(`${want}: ${Math.max(0, hit.at - done).toFixed(1)} ms after the command returned (${(hit.at - before).toFixed(1)} ms after it was sent)`);
      }
      assert.ok(seen.some((s) => s.e === "create g"), "the new name of a rename comes as create");
      tc.diagnostic(lag.join("; "));
      await w.stop();
    } finally {
      agent.close();
    }
  });

  it("ends a flood of 100,000 new files in an overflow event", async () => {
    const { t, sb, sh } = ctx();
    await sh("rm -rf /tmp/flood && mkdir /tmp/flood");
    const agent = await t.s.agent(sb.id);
    try {
      let events = 0;
      let overflow = false;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const w = agent.watch("/tmp/flood", {}, (e) => {
        if (e.type === "overflow") overflow = true;
        else events++;
        return events === 1 ? held : undefined; // the reader falls behind at the first event
      });
      await w.ready;
      // 100 batches of 1,000 new files, each batch removed after (a VM's /tmp holds ~16k inodes): 200,000 events.
      const r = await sh("cd /tmp/flood && n=0; i=0; while [ $i -lt 100 ]; do seq 1000 | sed \"s/^/f$i-/\" | xargs touch && n=$((n+$(ls | wc -l))); rm -f f*; i=$((i+1)); done; echo $n");
      assert.equal(r.stdout.trim(), "100000");
      release();
      for (let i = 0; i < 500 && !overflow; i++) await new Promise((res) => setTimeout(res, 20));
      assert.ok(overflow, `no overflow event after ${events} events`);
      assert.ok(events < 100_000, `${events} events`);
      await w.stop();
    } finally {
      agent.close();
      await sh("rm -rf /tmp/flood");
    }
  });

  it("renames files inside the sandbox", async () => {
    const { t, sb, sh } = ctx();
    await sh("rm -rf /tmp/mv && mkdir -p /tmp/mv/d && echo A > /tmp/mv/a && echo B > /tmp/mv/b");
    const agent = await t.s.agent(sb.id);
    try {
      await agent.rename("/tmp/mv/a", "/tmp/mv/d/a2");
      await assert.rejects(agent.rename("/tmp/mv/d/a2", "/tmp/mv/b", { noReplace: true }), { errno: "EEXIST" });
      await agent.rename("/tmp/mv/d/a2", "/tmp/mv/b");
      assert.equal((await sh("cat /tmp/mv/b; ls /tmp/mv/d | wc -l")).stdout, "A\n0\n");
    } finally {
      agent.close();
    }
  });
}
