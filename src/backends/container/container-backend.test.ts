// What the container backend asks of the host to make a sandbox, against
// the fake host (no root): the bundle, corral-launch's arguments, and the
// undo of a failed start.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseSpec } from "../../core/sandbox-spec.js";
import { BackendError } from "../../core/errors.js";
import { FakeHost } from "../../../test/helpers/fake-host.js";
import { ContainerBackend } from "./container-backend.js";
import { LOG_MAX } from "./container-handle.js";
import { CrunRuntime } from "./crun.js";

const ID = "00000000000000d1";
const UID = 0x60000000;

async function setup(mode: "v2" | "hybrid" = "v2") {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-cb-"));
  const host = new FakeHost();
  host.cgroupMode = mode;
  const crunRoot = path.join(base, "crun");
  const b = new ContainerBackend({ agentDir: "/agent", launcher: "/bin/corral-launch", uidBase: UID, cgroupParent: "corral-t" }, new CrunRuntime(crunRoot, host, "/bin/corral-launch"), host);
  const dir = path.join(base, ID);
  await fsp.mkdir(dir);
  const req = (spec: unknown) => ({ id: ID, spec: parseSpec(spec), hostname: "h", layers: ["/l/bottom", "/l/top"], dir });
  return { base, host, b, dir, crunRoot, req, done: () => fsp.rm(base, { recursive: true, force: true }) };
}

test("an ephemeral sandbox: tmpfs of its disk size, overlay top layer first, crun run with the ready pipe", async () => {
  const x = await setup("hybrid");
  try {
    let ready: boolean | undefined;
    x.host.onLaunch = async (_cmd, _args, o) => void (ready = o.readyPipe);
    await x.b.create(x.req({ template: "t", resources: { disk: "64M", pids: 99 } }));
    const scratch = path.join(x.dir, "scratch");
    assert.deepEqual(x.host.log, [
      [
        `launch /bin/corral-launch --log ${x.dir} container.log ${LOG_MAX} --unmount /sys/fs/cgroup/unified`,
        `--tmpfs ${scratch} ${64 * 1024 ** 2}`,
        `--owned-dir ${scratch}/upper ${UID} --owned-dir ${scratch}/work ${UID}`,
        // The agent's directory as a tmpfs copy: no store path in the sandbox's mountinfo.
        `--copy-tmpfs /agent ${x.dir}/agent`,
        `--overlay /l/top:/l/bottom ${scratch}/upper ${scratch}/work ${x.dir}/rootfs --`,
        `crun --root ${x.crunRoot} --cgroup-manager=cgroupfs run --detach --preserve-fds=1 --bundle ${x.dir} ${ID}`,
      ].join(" "),
    ]);
    assert.equal(ready, true);
    const config = JSON.parse(fs.readFileSync(path.join(x.dir, "config.json"), "utf8")) as {
      process: { args: string[] };
      linux: { resources: { pids: { limit: number } }; cgroupsPath: string };
    };
    assert.deepEqual(config.process.args.slice(-2), ["--ready-fd", "3"]);
    assert.deepEqual([config.linux.resources.pids.limit, config.linux.cgroupsPath], [99, `/corral-t/${ID}`]);
  } finally {
    await x.done();
  }
});

test("a sandbox of its own uid range: id-mapped layers, its range owns upper, run dir and user namespace", async () => {
  const x = await setup("v2");
  const own = UID + 17 * 65536;
  try {
    await x.b.create({ ...x.req({ template: "t" }), uidBase: own });
    const scratch = path.join(x.dir, "scratch");
    const [line] = x.host.log;
    assert.ok(line?.includes(`--owned-dir ${scratch}/upper ${own} --owned-dir ${scratch}/work ${own}`), line);
    assert.ok(line?.includes(`--idmap ${UID} ${own} 65536 ${scratch}/lowers`), line);
    assert.ok(line?.includes(`--idmapped-overlay /l/top:/l/bottom ${scratch}/upper ${scratch}/work ${x.dir}/rootfs --`), line);
    assert.ok(!line?.includes("--overlay "), line);
    const config = JSON.parse(fs.readFileSync(path.join(x.dir, "config.json"), "utf8")) as { linux: { uidMappings: unknown[]; gidMappings: unknown[] } };
    assert.deepEqual(config.linux.uidMappings, [{ containerID: 0, hostID: own, size: 65536 }]);
    assert.deepEqual(config.linux.gidMappings, [{ containerID: 0, hostID: own, size: 65536 }]);
  } finally {
    await x.done();
  }
});

test("a persistent sandbox keeps its upper dir in an ext4 image of its disk size; v2 hosts unmount nothing", async () => {
  const x = await setup("v2");
  try {
    await x.b.create(x.req({ template: "t", lifetime: { mode: "persistent" }, resources: { disk: "20M" } }));
    const [mkfs, line] = x.host.log;
    assert.equal(mkfs, `run mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1 ${x.dir}/disk.img`);
    assert.equal(fs.statSync(path.join(x.dir, "disk.img")).size, 20 * 1024 ** 2);
    assert.ok(!line?.includes("--unmount") && !line?.includes("--tmpfs"), line);
    assert.ok(line?.includes(`--ext4 ${x.dir}/disk.img ${x.dir}/disk`), line);
    assert.ok(line?.includes(`--overlay /l/top:/l/bottom ${x.dir}/disk/upper ${x.dir}/disk/work ${x.dir}/rootfs --`), line);
  } finally {
    await x.done();
  }
});

test("a persistent sandbox whose disk cap the host cannot make is refused, saying why", async () => {
  const x = await setup();
  try {
    x.host.onRun = (cmd) => (cmd === "mkfs.ext4" ? { code: 127, stderr: "mkfs.ext4: not found" } : {});
    await assert.rejects(x.b.create(x.req({ template: "t", lifetime: { mode: "persistent" }, resources: { disk: "10M" } })), (e: Error & { code?: string }) => {
      assert.equal(e.code, "backend_failed");
      assert.match(e.message, /cannot make a 10485760-byte disk image to cap the sandbox's disk \(mkfs\.ext4, from e2fsprogs\): .*not found/);
      return true;
    });
    assert.ok(!x.host.log.some((l) => l.startsWith("launch ")), "nothing was started without its cap");
    assert.ok(!fs.existsSync(path.join(x.dir, "disk.img")));
  } finally {
    await x.done();
  }
});

test("a failed start says why with the log's tail, and leaves no directory or state behind", async () => {
  const x = await setup();
  try {
    x.host.onLaunch = async () => {
      fs.appendFileSync(path.join(x.dir, "container.log"), "crun: mount `/proc`: Operation not permitted\n");
      await fsp.mkdir(path.join(x.crunRoot, ID), { recursive: true });
      throw new BackendError("corral-launch exited with 1");
    };
    await assert.rejects(x.b.create(x.req({ template: "t" })), {
      code: "backend_failed",
      message: `container ${ID} failed to start: corral-launch exited with 1: crun: mount \`/proc\`: Operation not permitted`,
    });
    assert.ok(!fs.existsSync(x.dir));
    assert.ok(!fs.existsSync(path.join(x.crunRoot, ID)));
    // crun had state but no cgroup: asked to delete it itself.
    assert.ok(x.host.log.includes(`run crun --root ${x.crunRoot} delete --force ${ID}`));
  } finally {
    await x.done();
  }
});

test("probe says what is missing", async () => {
  const x = await setup();
  try {
    x.host.programs.delete("crun");
    const r = await x.b.probe();
    assert.equal(r.available, false);
    assert.ok(r.notes.some((n) => n.includes("crun is not installed (apt-get install crun)")), r.notes.join("; "));
    assert.ok(r.notes.some((n) => n.includes("/bin/corral-launch is missing")), r.notes.join("; "));
  } finally {
    await x.done();
  }
});
