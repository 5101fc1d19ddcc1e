import { test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import fsp from "node:fs/promises";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { processRunning } from "../../host/process.js";
import { REFILL_DELAY_MS, ShimLauncher } from "./shim-launcher.js";
import { vmIdentity } from "./identity.js";
import type { ShimConfig } from "./shim-files.js";
import { cgroupMode, ContainerCgroup, listChildren, removeEmptyParent, SPARE_PREFIX } from "../../host/cgroups.js";

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

test("a spare waits in a cgroup of its own, renamed to its VM's when given one, removed when let go", async (t) => {
  const mode = cgroupMode();
  if (mode === "v2") return t.skip("cgroup2 has no rename: a spare enters its VM's cgroup when given it");
  const parent = `corral-shimtest-${process.pid}`;
  const procs = (rel: string) => fsp.readFile(`/sys/fs/cgroup/memory/${rel}/cgroup.procs`, "utf8").catch(() => "");
  const waitFor = async (what: () => Promise<boolean>) => {
    for (let i = 0; i < 250 && !(await what()); i++) await new Promise((r) => setTimeout(r, 20));
    return what();
  };
  try {
    // Let go: it leaves, removes its cgroup, exits.
    const l = new ShimLauncher(true, parent);
    l.refill();
    const pid = l.sparePid!;
    assert.ok(await waitFor(async () => (await procs(`${parent}/${SPARE_PREFIX}${pid}`)).includes(String(pid))), "the spare never entered its cgroup");
    l.close();
    assert.equal(await gone(pid), true);
    assert.deepEqual(await listChildren(mode, parent), []);

    // Given a VM: the same cgroup, under the VM's name, holds it (its "QEMU" here is sleep, whose agent never answers).
    const m = new ShimLauncher(true, parent);
    m.refill();
    const spare = m.sparePid!;
    assert.ok(await waitFor(async () => (await procs(`${parent}/${SPARE_PREFIX}${spare}`)).includes(String(spare))));
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-shim-"));
    try {
      const cfg: ShimConfig = {
        vmm: "qemu",
        binary: "/bin/sleep",
        args: ["5"],
        wiring: { kind: "fds" },
        guestStop: "poweroff",
        identity: vmIdentity("vmid"),
        bootTimeoutMs: 100,
        cgroup: `${parent}/vmid`,
      };
      await fsp.writeFile(path.join(dir, "vm.json"), JSON.stringify(cfg));
      const c = m.start(dir);
      assert.equal(c.pid, spare);
      assert.ok(await waitFor(async () => (await procs(`${parent}/vmid`)).includes(String(spare))), "the VM's cgroup does not hold the shim");
      assert.deepEqual((await listChildren(mode, parent)).filter((n) => n.startsWith(SPARE_PREFIX)), []);
      c.kill("SIGKILL");
      assert.equal(await gone(spare), true);
    } finally {
      m.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  } finally {
    for (const name of await listChildren(mode, parent)) {
      const cg = new ContainerCgroup(mode, `${parent}/${name}`);
      for (const p of await cg.processes()) process.kill(p, "SIGKILL");
      await cg.remove().catch(() => {});
    }
    await removeEmptyParent(mode, parent);
  }
});
