import { test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import fsp from "node:fs/promises";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { processRunning } from "../../host/process.js";
import { REFILL_DELAY_MS, ShimLauncher } from "./shim-launcher.js";

async function gone(pid: number, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (!processRunning(pid)) return true;
  return false;
}

test("a spare shim waits at the lowest CPU priority and exits when let go", async () => {
  const l = new ShimLauncher(true);
  l.refill();
  const pid = l.sparePid;
  assert.ok(pid);
  assert.equal(os.getPriority(pid), 19);
  l.refill(); // one spare at most
  assert.equal(l.sparePid, pid);
  l.close();
  assert.equal(await gone(pid), true, "the spare outlived close()");
});

test("a spare that died while it waited is not handed a VM: a new shim is", async () => {
  const l = new ShimLauncher(true);
  l.refill();
  const spare = l.sparePid!;
  process.kill(spare, "SIGKILL");
  assert.equal(await gone(spare), true);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-shim-"));
  try {
    const c = l.start(dir); // no vm.json here: the new shim logs why and exits
    assert.ok(c.pid && c.pid !== spare);
    // Its report pipe (kept referenced once started) closes when it exits.
    const report = c.stdio[3] as NodeJS.ReadableStream;
    report.resume();
    await new Promise((r) => report.once("close", r));
    assert.match(await fsp.readFile(path.join(dir, "shim.log"), "utf8"), /vm\.json/);
  } finally {
    l.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("refillSoon starts the spare later, once, and close() calls it off", async () => {
  const l = new ShimLauncher(true);
  l.refillSoon();
  l.refillSoon();
  assert.equal(l.sparePid, undefined, "started at once");
  await new Promise((r) => setTimeout(r, REFILL_DELAY_MS + 50));
  const pid = l.sparePid;
  assert.ok(pid, "no spare after the delay");
  l.close();
  assert.equal(await gone(pid), true);
  const m = new ShimLauncher(true);
  m.refillSoon();
  m.close();
  await new Promise((r) => setTimeout(r, REFILL_DELAY_MS + 50));
  assert.equal(m.sparePid, undefined, "a refill called off by close() still started");
});

test("no spare without keepSpare", () => {
  const l = new ShimLauncher(false);
  l.refill();
  assert.equal(l.sparePid, undefined);
});

test("a spare keeps no process alive and dies with the one that started it", async () => {
  const launcher = fileURLToPath(new URL("./shim-launcher.js", import.meta.url));
  // The child starts a spare and then has nothing left to do: it must exit on its own.
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", `const { ShimLauncher } = await import(${JSON.stringify(launcher)}); const l = new ShimLauncher(true); l.refill(); console.log(l.sparePid);`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const pid = Number(r.stdout.trim());
  assert.ok(pid > 0);
  assert.equal(await gone(pid), true, "the spare outlived its starter");
});
