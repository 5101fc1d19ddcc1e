// Host directories shared into sandboxes (`shares`): bind mounts in a
// container, virtiofs in a VM (one confined virtiofsd per share), both
// limited to directories the operator allows; see runtime/shares.ts for
// what each check guards against.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { freshState, type TestState } from "../helpers/state.js";
import { nativeBinary } from "../../src/host/native.js";

/** The processes whose command line names `dir` and runs virtiofsd. */
function virtiofsdOf(dir: string): number[] {
  const out: number[] = [];
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    const cmd = (() => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        return "";
      }
    })();
    if (cmd.includes("virtiofsd") && cmd.includes(dir)) out.push(Number(pid));
  }
  return out;
}

for (const backend of ["container", "vm"] as const) {
  describe(`shares in a ${backend}`, () => {
    let t: TestState;
    let ws: string;
    let outside: string;
    before(async () => {
      t = await freshState(`shares-${backend}`);
      const base = path.dirname(t.stateDir);
      ws = path.join(base, "ws");
      outside = path.join(base, "outside");
      await fsp.mkdir(path.join(ws, "project"), { recursive: true });
      await fsp.mkdir(outside);
      await fsp.writeFile(path.join(outside, "secret"), "not for sandboxes\n");
      // The sandbox's root is host uid uidBase (containers and virtiofsd alike): the workspace is its.
      await fsp.chown(path.join(ws, "project"), t.s.uidBase, t.s.uidBase);
      await t.s.allowShares([ws]);
    });
    after(async () => t.close());

    const create = (shares: unknown, extra: Record<string, unknown> = {}) =>
      t.s.create({ template: "busybox", backend, resources: { memory: "128M" }, shares, ...extra });
    async function run(id: string, cmd: string): Promise<{ code: number | null; out: string }> {
      const out: Buffer[] = [];
      const r = await t.s.exec(id, { cmd: `{ ${cmd}; } 2>&1` }, { onStdout: (b) => out.push(b) });
      return { code: r.exitCode, out: Buffer.concat(out).toString() };
    }

    it("a file written on the host is read in the sandbox and the other way round; read-only is read-only", async () => {
      const project = path.join(ws, "project");
      await fsp.writeFile(path.join(project, "from-host.txt"), "written on the host\n");
      const sb = await create([
        { source: project, target: "/work" },
        { source: project, target: "/srv/ro", readOnly: true },
      ]);
      try {
        assert.deepEqual(await run(sb.id, "cat /work/from-host.txt"), { code: 0, out: "written on the host\n" });
        assert.equal((await run(sb.id, "echo written in the sandbox > /work/from-sandbox.txt")).code, 0);
        assert.equal(await fsp.readFile(path.join(project, "from-sandbox.txt"), "utf8"), "written in the sandbox\n");
        // Owned on the host as the container's root's writes are.
        assert.equal((await fsp.stat(path.join(project, "from-sandbox.txt"))).uid, t.s.uidBase);
        // A later host write is seen at once (no cache holds the old view).
        await fsp.writeFile(path.join(project, "from-host.txt"), "changed on the host\n");
        assert.deepEqual(await run(sb.id, "cat /work/from-host.txt"), { code: 0, out: "changed on the host\n" });

        assert.deepEqual(await run(sb.id, "cat /srv/ro/from-sandbox.txt"), { code: 0, out: "written in the sandbox\n" });
        const ro = await run(sb.id, "touch /srv/ro/x");
        assert.notEqual(ro.code, 0);
        assert.match(ro.out, /Read-only file system/);
        // The guest's root may remount its own mount read-write: the host's bind stays read-only.
        if (backend === "vm") {
          assert.equal((await run(sb.id, "mount -o remount,rw /srv/ro")).code, 0);
          const again = await run(sb.id, "touch /srv/ro/x");
          assert.notEqual(again.code, 0, again.out);
          assert.match(again.out, /Read-only file system/);
        }
        assert.equal(fs.existsSync(path.join(project, "x")), false);
        if (backend === "vm") assert.equal(virtiofsdOf(path.join(t.stateDir, "sandboxes", sb.id)).length > 0, true);
      } finally {
        await t.s.destroy(sb.id);
      }
      assert.deepEqual(virtiofsdOf(t.stateDir), [], "nothing of virtiofsd after rm");
    });

    it("refuses a source outside the allowed directories, through a symlink too, leaving nothing", async () => {
      await assert.rejects(create([{ source: outside, target: "/x" }]), { code: "share_not_allowed", status: 403 });
      await fsp.symlink(outside, path.join(ws, "escape"));
      await assert.rejects(create([{ source: path.join(ws, "escape"), target: "/x" }]), (e: Error & { code?: string }) => {
        assert.equal(e.code, "share_not_allowed");
        assert.match(e.message, /really .*outside/);
        return true;
      });
      await assert.rejects(create([{ source: `${ws}/project/../../outside`, target: "/x" }]), { code: "share_not_allowed" });
      await assert.rejects(create([{ source: path.join(ws, "missing"), target: "/x" }]), (e: Error & { code?: string; issues?: { path: string }[] }) => {
        assert.equal(e.code, "invalid_spec");
        assert.deepEqual(e.issues?.map((i) => i.path), ["shares.0.source"]);
        return true;
      });
      assert.deepEqual(await t.s.list(), []);
      assert.deepEqual(await fsp.readdir(path.join(t.stateDir, "sandboxes")), []);
    });

    if (backend === "vm") {
      it("a VM with shares is refused a snapshot with a 409 and runs on", async () => {
        const sb = await create([{ source: path.join(ws, "project"), target: "/work" }]);
        try {
          await assert.rejects(t.s.snapshot(sb.id, "shared"), (e: Error & { status?: number }) => {
            assert.equal(e.status, 409);
            assert.match(e.message, /host shares .*cannot be snapshotted/);
            return true;
          });
          assert.deepEqual(t.s.listSnapshots(), []);
          assert.equal((await run(sb.id, "ls /work >/dev/null")).code, 0);
        } finally {
          await t.s.destroy(sb.id);
        }
      });
    }
  });
}

describe("share policy", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("share-policy");
  });
  after(async () => t.close());

  it("never allows /, the state dir, what holds it or lies in it, a relative or missing path", async () => {
    const base = path.dirname(t.stateDir);
    for (const bad of ["/", t.stateDir, base, path.join(t.stateDir, "store"), "relative/dir", path.join(base, "missing")]) {
      await assert.rejects(t.s.allowShares([bad]), { code: "invalid_argument" }, bad);
    }
    assert.deepEqual(t.s.allowedShares, []);
  });

  it("refuses shares when none are allowed, and targets corral mounts itself (spec errors name the field)", async () => {
    await assert.rejects(t.s.create({ template: "busybox", shares: [{ source: "/tmp", target: "/x" }] }), { code: "share_not_allowed" });
    for (const [target, field] of [["/proc/x", "shares.0.target"], ["/run", "shares.0.target"], ["/", "shares.0.target"], ["/a b", "shares.0.target"], ["/a/../b", "shares.0.target"]] as const) {
      await assert.rejects(t.s.create({ template: "busybox", shares: [{ source: "/tmp", target }] }), (e: Error & { issues?: { path: string }[] }) => {
        assert.deepEqual(e.issues?.map((i) => i.path), [field], target);
        return true;
      });
    }
    await assert.rejects(t.s.create({ template: "busybox", shares: [{ source: "/tmp", target: "/x" }, { source: "/var", target: "/x" }] }), /shares\.1\.target: \/x is also shares\.0's target/);
  });

  it("corral-launch binds by fd below the root: a symlink in the path is refused, not followed", async () => {
    const base = path.dirname(t.stateDir);
    const root = path.join(base, "root");
    const stage = path.join(base, "stage");
    await fsp.mkdir(path.join(root, "real"), { recursive: true });
    await fsp.mkdir(stage);
    await fsp.symlink("/etc", path.join(root, "swapped"));
    const launch = (rel: string) => spawnSync(nativeBinary("corral-launch"), ["--bind-beneath", root, rel, stage, "ro", "--", "ls", stage], { encoding: "utf8" });
    assert.equal(launch("real").status, 0);
    for (const rel of ["swapped", "../..", "real/../../.."]) {
      const r = launch(rel);
      assert.equal(r.status, 125, rel);
      assert.match(r.stderr, /open share below its root/, rel);
    }
  });
});
