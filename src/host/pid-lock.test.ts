import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { withPidLock } from "./pid-lock.js";

const fast = { pollMs: 1, timeoutMs: 5_000 };

function tmpDir(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-pid-lock-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A pid that was a process and is no more. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

test("runs one holder at a time, in this process and its waiters", async (t) => {
  const lock = path.join(tmpDir(t), "lock");
  let inside = 0;
  let most = 0;
  await Promise.all(
    Array.from({ length: 20 }, () =>
      withPidLock(
        lock,
        async () => {
          most = Math.max(most, ++inside);
          await new Promise((r) => setTimeout(r, 2));
          inside--;
        },
        fast,
      ),
    ),
  );
  assert.equal(most, 1);
  assert.deepEqual(fs.readdirSync(path.dirname(lock)), []);
});

test("takes over from a dead holder once, with processes racing for it", async (t) => {
  const dir = tmpDir(t);
  const lock = path.join(dir, "lock");
  const log = path.join(dir, "log");
  const dead = deadPid();
  // Each process: 10 turns, each marking its entry and exit in one shared log (O_APPEND).
  const script = `
    import fs from "node:fs";
    import { withPidLock } from ${JSON.stringify(new URL("./pid-lock.js", import.meta.url).href)};
    for (let i = 0; i < 10; i++) {
      await withPidLock(${JSON.stringify(lock)}, async () => {
        fs.appendFileSync(${JSON.stringify(log)}, "in\\n");
        await new Promise((r) => setTimeout(r, 1));
        fs.appendFileSync(${JSON.stringify(log)}, "out\\n");
      }, { pollMs: 1, timeoutMs: 60_000 });
    }`;
  // Three rounds, each starting from a lock left by a dead holder.
  for (let round = 0; round < 3; round++) {
    fs.writeFileSync(lock, String(dead));
    const runs = Array.from({ length: 4 }, () =>
      new Promise<number | null>((resolve) => {
        const c = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "ignore", "inherit"] });
        c.once("close", resolve);
      }),
    );
    assert.deepEqual(await Promise.all(runs), [0, 0, 0, 0]);
  }
  const lines = fs.readFileSync(log, "utf8").trim().split("\n");
  assert.equal(lines.length, 3 * 4 * 10 * 2);
  lines.forEach((l, i) => assert.equal(l, i % 2 ? "out" : "in", `line ${i}: two holders at once`));
  assert.deepEqual(fs.readdirSync(dir), ["log"]);
});

test("waits on a live holder and gives up at the timeout, naming it", async (t) => {
  const lock = path.join(tmpDir(t), "lock");
  fs.writeFileSync(lock, String(process.ppid));
  await assert.rejects(withPidLock(lock, async () => {}, { pollMs: 5, timeoutMs: 50 }), new RegExp(`held by pid ${process.ppid}`));
  assert.equal(fs.readFileSync(lock, "utf8"), String(process.ppid));
});

test("an empty lock file (a writer of old killed before its pid) is waited on while young, taken once old", async (t) => {
  const lock = path.join(tmpDir(t), "lock");
  fs.writeFileSync(lock, "");
  await assert.rejects(withPidLock(lock, async () => {}, { pollMs: 5, timeoutMs: 50 }), /timed out/);
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(lock, old, old);
  assert.equal(await withPidLock(lock, async () => "ran", fast), "ran");
});

test("sweeps the files of waiters killed while they waited", async (t) => {
  const dir = tmpDir(t);
  const lock = path.join(dir, "lock");
  const dead = deadPid();
  fs.writeFileSync(`${lock}.${dead}.0badc0de`, String(dead));
  fs.writeFileSync(`${lock}.stale.${dead}.0badc0de`, String(dead));
  fs.writeFileSync(path.join(dir, "other"), "kept");
  await withPidLock(lock, async () => {}, fast);
  assert.deepEqual(fs.readdirSync(dir), ["other"]);
});
