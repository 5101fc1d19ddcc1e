// Stdout flood with slow and stalled readers (issue 18, "filling the
// daemon's memory"): 16 clients each read a command's whole output from one
// sandbox while 4 more (2 over HTTP, 2 over /v1/connect giving no credit)
// stall on theirs. corrald, a process of its own as an operator runs it,
// must stay under its documented memory bound (docs/SPECIFICATION.md), the
// readers must get every byte while the stallers stall (before per-command
// flow control one stalled reader held the sandbox's agent connection, and
// every other command of that sandbox with it), and a staller that leaves
// must take its command with it.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import type { ChildProcess } from "node:child_process";
import { freshState, type TestState } from "../helpers/state.js";
import { request } from "../helpers/daemon.js";
import { ConnectClient } from "../helpers/connect-client.js";
import { spawnDaemon } from "../../src/server/spawn.js";
import { runscUnusable } from "../helpers/runsc.js";

/** The bound docs/SPECIFICATION.md promises for corrald's resident memory under this load. */
const DAEMON_RSS_BOUND_MIB = 256;
const READERS = 16;
const HTTP_STALLERS = 2;
const CONNECT_STALLERS = 2;
/** A reader that got nothing for this long while the stallers stall is held up by them. */
const NO_PROGRESS_MS = 30_000;

const kib = (pid: number, field: "VmRSS" | "VmHWM") =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);

for (const [backend, bytesEach] of [
  ["container", 100_000_000],
  // gVisor's sentry (ptrace platform) moves output slower than crun: 10 MB each.
  ["gvisor", 10_000_000],
  // A TCG guest's virtio-serial moved ~6 MB/s here: 10 MB each keeps the suite's time sane.
  ["vm", 10_000_000],
] as const) {
  describe(`stdout flood, ${backend}`, async () => {
    const skip = backend === "gvisor" ? await runscUnusable() : undefined;
    let t: TestState;
    let d: { proc: ChildProcess; url: string };
    let key: string;
    let sb: string;
    // The stallers, left in any case before the daemon is stopped (a daemon waits for open requests).
    const stalled: http.ClientRequest[] = [];
    const connectStallers: ConnectClient[] = [];
    before(async () => {
      if (skip) return;
      t = await freshState(`flood-${backend}`);
      key = t.s.tenants.createKey("flood").key;
      d = await spawnDaemon(t.stateDir, { CORRAL_CGROUP_PARENT: t.cgroupParent });
      const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", backend, resources: { memory: "256M" } } });
      assert.equal(r.status, 201, r.text);
      sb = r.json<{ id: string }>().id;
    });
    after(async () => {
      if (skip) return;
      for (const r of stalled) r.destroy();
      for (const c of connectStallers) c.ws.close();
      const gone = new Promise((r) => d.proc.once("exit", r));
      d.proc.kill("SIGTERM");
      const late = setTimeout(() => d.proc.kill("SIGKILL"), 10_000);
      await gone;
      clearTimeout(late);
      await t.close();
    });

    it(`keeps corrald under ${DAEMON_RSS_BOUND_MIB} MiB while ${READERS} clients read ${bytesEach / 1e6} MB each and ${HTTP_STALLERS + CONNECT_STALLERS} stall`, { skip }, async () => {
      const pid = d.proc.pid!;
      const rssBefore = kib(pid, "VmRSS");
      const cmd = (n: number) => ({ cmd: `head -c ${n} /dev/zero` });
      const exec = (body: object, onResponse: (res: http.IncomingMessage, req: http.ClientRequest) => void) => {
        const req = http.request(new URL(`/v1/sandboxes/${sb}/exec`, d.url), {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        });
        req.on("response", (res) => onResponse(res, req));
        req.end(JSON.stringify(body));
        return req;
      };
      // The stallers first: each takes its response and reads nothing more.
      await Promise.all(
        Array.from({ length: HTTP_STALLERS }, () => new Promise<void>((resolve) => {
          stalled.push(exec({ cmd: "cat /dev/zero" }, (res) => {
            res.pause();
            resolve();
          }));
        })),
      );
      connectStallers.push(...(await Promise.all(Array.from({ length: CONNECT_STALLERS }, () => ConnectClient.open(d.url, key)))));
      for (const c of connectStallers) {
        c.autoCredit = false;
        c.send({ id: 1, op: "exec", params: { id: sb }, body: { cmd: "cat /dev/zero" } });
        await c.until((m) => m.id === 1 && m.event?.type === "start");
      }
      // The readers: every stdout byte counted.
      let progress = 0;
      const readers = Array.from({ length: READERS }, () => new Promise<number>((resolve, reject) => {
        exec(cmd(bytesEach), (res) => {
          let rest = "";
          let got = 0;
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            rest += c;
            for (let i = rest.indexOf("\n"); i >= 0; i = rest.indexOf("\n")) {
              const e = JSON.parse(rest.slice(0, i)) as { type: string; data?: string; exitCode?: number };
              rest = rest.slice(i + 1);
              if (e.type === "stdout") {
                const n = Buffer.from(e.data!, "base64").length;
                got += n;
                progress += n;
              }
              if (e.type === "exit") assert.equal(e.exitCode, 0);
            }
          });
          res.on("end", () => resolve(got));
          res.on("error", reject);
        }).on("error", reject);
      }));
      // Liveness, not speed: the readers must keep getting bytes while the stallers stall.
      let seen = -1;
      let since = Date.now();
      let stuck = false;
      const watch = setInterval(() => {
        if (progress !== seen) [seen, since] = [progress, Date.now()];
        else if (Date.now() - since > NO_PROGRESS_MS) stuck = true;
      }, 1000);
      const all = Promise.all(readers);
      while (!stuck && !(await Promise.race([all.then(() => true), new Promise((r) => setTimeout(() => r(false), 1000))]))) {
        /* waiting */
      }
      clearInterval(watch);
      assert.ok(!stuck, `the readers got nothing for ${NO_PROGRESS_MS / 1000} s while ${HTTP_STALLERS + CONNECT_STALLERS} clients stalled (${progress} bytes in all): a stalled reader holds up the others`);
      const got = await all;
      assert.deepEqual(got, Array(READERS).fill(bytesEach), "every reader got all its bytes");
      // The stallers are still there, their commands still running, held.
      for (const c of connectStallers) assert.ok((c.total.get(1) ?? 0) > 0 && !c.messages.some((m) => m.id === 1 && m.event?.type === "exit"));
      const peak = kib(pid, "VmHWM");
      console.log(`# ${backend}: corrald RSS ${(rssBefore / 1024).toFixed(0)} MiB before, peak ${(peak / 1024).toFixed(0)} MiB (bound ${DAEMON_RSS_BOUND_MIB} MiB), ${READERS} x ${bytesEach} bytes read`);
      assert.ok(peak < DAEMON_RSS_BOUND_MIB * 1024, `corrald peaked at ${(peak / 1024).toFixed(0)} MiB`);

      // Stallers that leave take their commands (and what was held for them) with them.
      for (const r of stalled) r.destroy();
      for (const c of connectStallers) c.ws.close();
      let left = "";
      for (let i = 0; i < 100; i++) {
        const ps = await request(d.url, "POST", `/v1/sandboxes/${sb}/exec`, { key, json: { cmd: "ps -o comm= 2>/dev/null || ps" } });
        left = ps.text.split("\n").filter((l) => l.includes('"stdout"')).map((l) => Buffer.from((JSON.parse(l) as { data: string }).data, "base64").toString()).join("");
        if (!/\bcat\b/.test(left)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.doesNotMatch(left, /\bcat\b/, "the stalled commands were killed when their clients left");
      const after = kib(pid, "VmRSS");
      console.log(`# ${backend}: corrald RSS ${(after / 1024).toFixed(0)} MiB once the stallers left`);
      assert.ok(after < DAEMON_RSS_BOUND_MIB * 1024);
    });
  });
}
