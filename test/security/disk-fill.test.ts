// Disk fill (issue 18, "filling the host from inside a sandbox"): a sandbox
// with a 10 MiB disk, ephemeral or persistent, container or VM, writes all
// it can by every path it has to the host's disk (its own disk, PID 1's
// stdout and stderr, /run/corral; gVisor where runsc runs), and the host's disk under its
// directory grows by at most the cap plus the documented slack
// (docs/security.md). Before: PID 1's stdio was a host file (200 MiB from
// `dd of=/proc/1/fd/2`), /run/corral a host directory, and a persistent
// container's disk was not capped at all.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { runCommand } from "../../src/host/command.js";
import { parseDeclared } from "../../src/runtime/declared-state.js";
import { runscUnusable } from "../helpers/runsc.js";

const CAP = 10 * 1024 ** 2;
/** What a sandbox may add beyond its disk: its capped log (2 x 256 KiB) and its small host files (config, sockets, records). */
const SLACK = 1024 ** 2;
const WRITE_MIB = 40;

/** Bytes allocated on the host's disk under `dir` (sparse files count what they hold). */
async function allocated(dir: string): Promise<number> {
  const { stdout: out } = await runCommand("du", ["-s", "-x", "--block-size=1", dir]);
  return Number(out.split(/\s/)[0]);
}

/**
 * Every way a sandbox has to put bytes on the host's disk, each tried with
 * WRITE_MIB MiB; PID 1's stdio with `stdioMiB` (a VM's is its serial
 * console, which TCG moves at a few hundred KiB/s: 2 MiB is still 4 x
 * what the host keeps of it).
 */
const attack = (stdioMiB: number) =>
  [
    `dd if=/dev/zero of=/work/fill bs=1M count=${WRITE_MIB}`,
    `dd if=/dev/zero of=/tmp/fill bs=1M count=${WRITE_MIB}`,
    `dd if=/dev/zero of=/run/corral/fill bs=1M count=${WRITE_MIB}`,
    `dd if=/dev/zero of=/proc/1/fd/1 bs=64k count=${stdioMiB * 16}`,
    `dd if=/dev/zero of=/proc/1/fd/2 bs=64k count=${stdioMiB * 16}`,
    "sync",
  ]
    .map((c) => `${c} 2>/dev/null`)
    .join("; ");

for (const backend of ["container", "gvisor", "vm"] as const) {
  describe(`disk fill, ${backend}`, async () => {
    const skip = backend === "gvisor" ? await runscUnusable() : undefined;
    let t: TestState;
    before(async () => {
      if (!skip) t = await freshState(`diskfill-${backend}`);
    });
    after(async () => {
      if (!skip) await t.close();
    });

    for (const mode of ["ephemeral", "persistent"] as const) {
      it(`keeps a ${mode} sandbox with a 10 MiB disk to 10 MiB + ${SLACK / 1024 ** 2} MiB of the host's disk`, { skip }, async () => {
        const sb = await t.s.create({ template: "busybox", backend, lifetime: { mode }, resources: { disk: CAP, memory: "256M" } });
        try {
          const dir = path.join(t.stateDir, "sandboxes", sb.id);
          const before = await allocated(dir);
          const r = await t.s.exec(sb.id, { cmd: attack(backend === "vm" ? 2 : WRITE_MIB), timeoutMs: 600_000 });
          assert.equal(r.timedOut, false);
          const grew = (await allocated(dir)) - before;
          console.log(`# ${backend} ${mode}: the sandbox's directory grew by ${(grew / 1024).toFixed(0)} KiB after the writes`);
          assert.ok(grew <= CAP + SLACK, `the host's disk took ${grew} bytes from a sandbox capped at ${CAP}`);
          // The sandbox still works (its disk is full, not it).
          const echo = await t.s.exec(sb.id, { cmd: "rm -f /work/fill /tmp/fill; echo alive" });
          assert.equal(echo.exitCode, 0);
          if (mode === "persistent") {
            // The cap holds across a stop and start, and what was written stays.
            await t.s.exec(sb.id, { cmd: "echo kept > /work/mark" });
            await t.s.stop(sb.id);
            await t.s.start(sb.id);
            const out: Buffer[] = [];
            const mark = await t.s.exec(sb.id, { cmd: "cat /work/mark" }, { onStdout: (b) => out.push(b) });
            assert.equal(mark.exitCode, 0);
            assert.equal(Buffer.concat(out).toString(), "kept\n");
            const again = await t.s.exec(sb.id, { cmd: `dd if=/dev/zero of=/work/fill bs=1M count=${WRITE_MIB} 2>/dev/null` });
            assert.notEqual(again.exitCode, 0, "writing past the cap fails (ENOSPC)");
            await t.s.exec(sb.id, { cmd: "sync" });
            assert.ok((await allocated(dir)) - before <= CAP + SLACK);
          }
        } finally {
          await t.s.destroy(sb.id);
        }
        const { stdout: loops } = await runCommand("losetup", ["-l", "-n", "-O", "BACK-FILE"]);
        assert.ok(!loops.includes(t.stateDir), `loop devices left on the state dir:\n${loops}`);
      });
    }
  });
}

for (const backend of ["container", "vm"] as const) {
describe(`a persistent ${backend}'s disk when its spec's disk changes`, () => {
  let t: TestState;
  before(async () => {
    t = await freshState(`diskresize-${backend}`);
  });
  after(async () => t.close());

  const declared = (disk: string) =>
    parseDeclared(JSON.stringify({ version: 1, sandboxes: { grow: { spec: { template: "busybox", backend, resources: { disk, memory: "256M" }, lifetime: { mode: "persistent" } } } } }));
  const sh = async (id: string, cmd: string) => {
    let out = "";
    const r = await t.s.exec(id, { cmd }, { onStdout: (b) => (out += b.toString()), onStderr: (b) => (out += b.toString()) });
    return { code: r.exitCode, out };
  };

  it("grows its ext4 image on the next start, keeping what it wrote; a smaller disk is refused", async () => {
    assert.deepEqual((await t.s.applyDeclared(declared("16M"))).errors, []);
    const { id } = await t.s.get("grow");
    assert.equal((await sh(id, "dd if=/dev/zero of=/work/kept bs=1M count=8 2>&1 && sync")).code, 0);
    // 16 MiB holds no second 8 MiB file.
    assert.notEqual((await sh(id, "dd if=/dev/zero of=/work/more bs=1M count=12 2>/dev/null && sync; r=$?; rm -f /work/more; exit $r")).code, 0);
    const image = path.join(t.stateDir, "sandboxes", id, "disk.img");

    const grown = await t.s.applyDeclared(declared("48M"));
    assert.deepEqual([grown.errors, grown.recreated], [[], ["grow"]]);
    assert.equal((await t.s.get("grow")).id, id, "the same sandbox, on its disk");
    assert.equal((await runCommand("stat", ["-c", "%s", image])).stdout.trim(), String(48 * 1024 ** 2));
    assert.equal((await sh(id, "ls -l /work/kept | awk '{print $5}'")).out.trim(), String(8 * 1024 ** 2));
    assert.equal((await sh(id, "dd if=/dev/zero of=/work/more bs=1M count=24 2>&1 && sync")).code, 0, "the room it grew by is there");
    // Still capped: at the new size.
    assert.notEqual((await sh(id, "dd if=/dev/zero of=/work/over bs=1M count=40 2>/dev/null && sync; r=$?; rm -f /work/over; exit $r")).code, 0);

    const shrunk = await t.s.applyDeclared(declared("16M"));
    assert.deepEqual(shrunk.errors.map((e) => e.name), ["grow"]);
    assert.match(shrunk.errors[0]!.message, /disk cannot shrink: it has 50331648 bytes, the new spec asks for 16777216/);
    const after = await t.s.get("grow");
    assert.deepEqual([after.spec.resources.disk, after.status], [48 * 1024 ** 2, "running"], "the refused spec was not saved, nor the sandbox stopped for it");
    await t.s.destroy(id);
  });
});
}
