// A container handle's logic against the fake host (no root): status from
// crun's record and /proc, what stop kills and removes and in which order,
// rename through corral-launch.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { FakeHost } from "../../../test/helpers/fake-host.js";
import { ContainerBackend } from "./container-backend.js";
import { CrunRuntime } from "./crun.js";

const ID = "00000000000000c1";
const INIT = 5000;

async function setup() {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-ct-"));
  const host = new FakeHost();
  const crunRoot = path.join(base, "crun");
  const b = new ContainerBackend(
    { agentDir: "/agent", launcher: "/bin/corral-launch", uidBase: 0x60000000, cgroupParent: "corral-t" },
    new CrunRuntime(crunRoot, host, "/bin/corral-launch"),
    host,
  );
  const dir = path.join(base, "sandboxes", ID);
  await fsp.mkdir(dir, { recursive: true });
  /** crun's record of the container's init. */
  const record = async (pid: number, startTime?: number) => {
    await fsp.mkdir(path.join(crunRoot, ID), { recursive: true });
    await fsp.writeFile(path.join(crunRoot, ID, "status"), JSON.stringify({ pid, ...(startTime === undefined ? {} : { "process-start-time": startTime }) }));
  };
  return { base, host, b, dir, crunRoot, record, done: () => fsp.rm(base, { recursive: true, force: true }) };
}

test("status: running while crun's init is the same live process; stopped for a zombie, a recycled pid or no record; missing without state", async () => {
  const cases: [string, (x: Awaited<ReturnType<typeof setup>>) => Promise<void>, string][] = [
    ["live init", async (x) => (await x.record(INIT, 77), x.host.spawnProcess(INIT, 77)), "running"],
    ["no start time recorded", async (x) => (await x.record(INIT), x.host.spawnProcess(INIT, 12)), "running"],
    ["zombie", async (x) => (await x.record(INIT, 77), x.host.spawnProcess(INIT, 77, "Z")), "stopped"],
    ["pid taken by another process", async (x) => (await x.record(INIT, 77), x.host.spawnProcess(INIT, 78)), "stopped"],
    ["init gone", async (x) => x.record(INIT, 77), "stopped"],
    ["state without a status", async (x) => void (await fsp.mkdir(path.join(x.crunRoot, ID), { recursive: true })), "stopped"],
    ["nothing", async () => {}, "missing"],
  ];
  for (const [what, make, want] of cases) {
    const x = await setup();
    try {
      await make(x);
      assert.equal(await x.b.attach(ID, x.dir).status(), want, what);
    } finally {
      await x.done();
    }
  }
});

test("status is cached briefly: a crash shows on the next read after the TTL", async () => {
  const x = await setup();
  try {
    await x.record(INIT, 77);
    x.host.spawnProcess(INIT, 77);
    const h = x.b.attach(ID, x.dir);
    assert.equal(await h.status(), "running");
    x.host.procs.delete(INIT);
    assert.equal(await h.status(), "running");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await h.status(), "stopped");
  } finally {
    await x.done();
  }
});

test("stop kills the init first, then whatever is left in the cgroup, then removes the cgroup and crun's state", async () => {
  const x = await setup();
  try {
    await x.record(INIT, 77);
    x.host.spawnProcess(INIT, 77);
    x.host.spawnProcess(5001, 80);
    x.host.spawnProcess(5002, 81);
    const cg = x.host.cgroup(`corral-t/${ID}`);
    Object.assign(cg, { exists: true, procs: [INIT, 5001, 5002] });
    await x.b.attach(ID, x.dir).stop();
    assert.deepEqual(x.host.log, [`kill ${INIT} SIGKILL`, "kill 5001 SIGKILL", "kill 5002 SIGKILL", `rmdir corral-t/${ID}`]);
    assert.ok(!fs.existsSync(path.join(x.crunRoot, ID)));
    assert.ok(fs.existsSync(x.dir), "the directory (a persistent sandbox's disk) stays");
    assert.equal(await x.b.attach(ID, x.dir).status(), "missing");
  } finally {
    await x.done();
  }
});

test("stop never kills a process that took the init's pid, and asks crun only when it has state but no cgroup", async () => {
  const x = await setup();
  try {
    await x.record(INIT, 77);
    x.host.spawnProcess(INIT, 99); // someone else's now
    await x.b.attach(ID, x.dir).destroy();
    assert.deepEqual(x.host.log, [`run crun --root ${x.crunRoot} delete --force ${ID}`]);
    assert.ok(x.host.procs.has(INIT));
    assert.ok(!fs.existsSync(x.dir));
  } finally {
    await x.done();
  }
});

test("rename hands corral-launch the init's pid and start time, and the name on stdin; a stopped container cannot be renamed", async () => {
  const x = await setup();
  try {
    await x.record(INIT, 77);
    x.host.spawnProcess(INIT, 77);
    let input: string | undefined;
    x.host.onRun = (_cmd, _args, o) => ((input = o.input), { stdout: "ok\n" });
    await x.b.attach(ID, x.dir).rename("new-name");
    assert.deepEqual([x.host.log, input], [[`run /bin/corral-launch --set-hostname ${INIT} 77`], "new-name\n"]);
    x.host.onRun = () => ({ code: 125, stderr: "corral-launch: process 5000: No such process" });
    await assert.rejects(x.b.attach(ID, x.dir).rename("again"), /No such process/);
    x.host.procs.delete(INIT);
    await assert.rejects(x.b.attach(ID, x.dir).rename("again"), /is not running/);
  } finally {
    await x.done();
  }
});

test("stats come from the cgroup", async () => {
  const x = await setup();
  try {
    Object.assign(x.host.cgroup(`corral-t/${ID}`), { cpu: 5, memory: 6, pidCount: 7, ooms: 8 });
    assert.deepEqual(await x.b.attach(ID, x.dir).stats(), { cpuNanos: 5, memoryBytes: 6, pids: 7, oomKills: 8 });
  } finally {
    await x.done();
  }
});
