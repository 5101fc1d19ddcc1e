// The gVisor variant against the fake host (no root): what runsc is asked
// to run and how its state is read. The real thing: test/functional/shared-gvisor.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseSpec } from "../../core/sandbox-spec.js";
import { FakeHost } from "../../../test/helpers/fake-host.js";
import { ContainerBackend } from "../container/container-backend.js";
import { HOST_THREADS_PER_PROCESS, RunscRuntime, SENTRY_THREADS } from "./runsc.js";

const ID = "00000000000000e1";

async function setup() {
  process.env["CORRAL_GVISOR_PLATFORM"] = "ptrace";
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-gv-"));
  const host = new FakeHost();
  const root = path.join(base, "runsc");
  const runtime = new RunscRuntime(root, host);
  const b = new ContainerBackend({ agentDir: "/agent", launcher: "/bin/corral-launch", uidBase: 0x60000000, cgroupParent: "corral-t" }, runtime, host);
  const dir = path.join(base, ID);
  await fsp.mkdir(dir);
  return { base, host, runtime, b, dir, root, done: () => fsp.rm(base, { recursive: true, force: true }) };
}

test("a gVisor sandbox is the container bundle run by runsc: no ready fd, host pids scaled to the sentry's threads", async () => {
  const x = await setup();
  try {
    x.host.onLaunch = async () => {
      throw new Error("stop here"); // the launch itself is the functional suite's
    };
    const spec = parseSpec({ template: "t", backend: "gvisor", resources: { pids: 100 } });
    await assert.rejects(x.b.create({ id: ID, spec, hostname: "h", layers: ["/l"], dir: x.dir }), { code: "backend_failed", message: /^gvisor 00000000000000e1 failed to start: stop here/ });
    const line = x.host.log[0] ?? "";
    assert.ok(
      line.endsWith(
        `-- runsc --root ${x.root} --network=none --host-uds=create --overlay2=none --oci-seccomp --platform=ptrace run --detach --bundle ${x.dir} ${ID}`,
      ),
      line,
    );
    assert.equal(x.runtime.readyPipe, false);
    const opts = x.runtime.configOptions(spec);
    assert.deepEqual(opts, { readyFd: false, pidsLimit: 100 * HOST_THREADS_PER_PROCESS + SENTRY_THREADS });
  } finally {
    await x.done();
  }
});

test("runsc's state names the sandboxes it holds; removing it takes the state, lock and init record", async () => {
  const x = await setup();
  try {
    await fsp.mkdir(x.root, { recursive: true });
    for (const f of [`${ID}_sandbox:${ID}.state`, `${ID}_sandbox:${ID}.lock`, "other_sandbox:x.state", "stray"]) await fsp.writeFile(path.join(x.root, f), "{}");
    await fsp.writeFile(path.join(x.dir, "runsc-init.json"), JSON.stringify({ pid: 4000, startTime: 9 }));
    assert.deepEqual(await x.runtime.hostIds(), [ID]);
    assert.deepEqual(x.runtime.init(ID, x.dir), { pid: 4000, startTime: 9 });
    assert.equal(x.runtime.hasState(ID), true);
    x.host.spawnProcess(4000, 9);
    Object.assign(x.host.cgroup(`corral-t/${ID}`), { exists: true });
    assert.equal(await x.b.attach(ID, x.dir).status(), "running");
    await x.b.attach(ID, x.dir).stop();
    assert.deepEqual(x.host.log, ["kill 4000 SIGKILL", `rmdir corral-t/${ID}`]);
    assert.deepEqual(fs.readdirSync(x.root).sort(), ["other_sandbox:x.state", "stray"]);
    assert.equal(x.runtime.init(ID, x.dir), undefined);
    assert.equal(await x.b.attach(ID, x.dir).status(), "missing");
  } finally {
    await x.done();
  }
});

test("processes are counted by runsc ps, renames go through runsc exec with CAP_SYS_ADMIN", async () => {
  const x = await setup();
  try {
    x.host.onRun = (_cmd, args) => (args.includes("ps") ? { stdout: "[1,7,9]\n" } : {});
    assert.equal((await x.b.attach(ID, x.dir).stats()).pids, 3);
    await x.runtime.rename(ID, { pid: 1, startTime: 1 }, "claimed");
    assert.deepEqual(x.host.log, [`run runsc --root ${x.root} ps --format json ${ID}`, `run runsc --root ${x.root} exec --cap CAP_SYS_ADMIN ${ID} hostname claimed`]);
  } finally {
    await x.done();
  }
});
