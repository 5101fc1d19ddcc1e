// Threat: a process that escapes one sandbox (a kernel or runtime bug)
// acts as its host uid. Every sandbox used to be root at the one shared
// range, so an escape owned every other sandbox's files and could signal
// its processes. Now each sandbox has its own 65536 host uids
// (runtime/uid-ranges.ts) and sees the shared read-only layers through
// id-mapped mounts (corral-launch --idmap), so no layer is copied or
// chowned per sandbox.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { Sandboxes } from "../../src/runtime/sandboxes.js";
import { UID_RANGE } from "../../src/runtime/uid-ranges.js";

const inRange = (id: number, base: number) => id >= base && id < base + UID_RANGE;

/** Host pids and uids of the processes whose command line is exactly `argv`. */
function hostProcsOf(argv: string): { pid: number; uid: number }[] {
  const found: { pid: number; uid: number }[] = [];
  for (const pid of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim() !== argv) continue;
      const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
      if (uid !== undefined) found.push({ pid: Number(pid), uid: Number(uid) });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * The same, waiting (up to 5 s) until one is there: a command started in
 * the background with `&` may not have exec'd yet when the shell that
 * started it returns (a clean-clone CI run found none at its first look).
 */
async function hostProcOf(argv: string): Promise<{ pid: number; uid: number } | undefined> {
  for (let i = 0; i < 100; i++) {
    const [p] = hostProcsOf(argv);
    if (p) return p;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

describe("a uid range per sandbox", () => {
  let t: TestState;
  const sh = async (id: string, cmd: string, s: Sandboxes = t.s) => {
    const out: Buffer[] = [];
    const r = await s.exec(id, { cmd: `${cmd} 2>&1` }, { onStdout: (b) => out.push(b) });
    return { code: r.exitCode, out: Buffer.concat(out).toString() };
  };
  before(async () => {
    t = await freshState("uid-ranges");
  });
  after(async () => t.close());

  it("gives two sandboxes disjoint host uids: files, processes, user namespace", async () => {
    const a = await t.s.create({ template: "busybox", lifetime: { mode: "persistent" } });
    const b = await t.s.create({ template: "busybox", lifetime: { mode: "persistent" } });
    const [ba, bb] = [t.s.uidBaseOf(a.id), t.s.uidBaseOf(b.id)];
    assert.ok(Math.abs(ba - bb) >= UID_RANGE, `ranges overlap: ${ba} and ${bb}`);
    for (const [sb, base] of [[a, ba], [b, bb]] as const) {
      // The user namespace maps 0.. onto its own range, none of the store's.
      assert.equal((await sh(sb.id, "cat /proc/self/uid_map")).out.trim().split(/\s+/).join(" "), `0 ${base} ${UID_RANGE}`);
      assert.ok(!inRange(base, t.s.uidBase), "a sandbox is root at the store's range");
      // A file made inside, as root and as uid 1000, is owned on the host by its own range only.
      assert.equal((await sh(sb.id, "echo x > /root-file && touch /user-file && chown 1000:1000 /user-file && echo ok")).out, "ok\n");
    }
    // Processes: the same program in each runs as a host uid of its own sandbox's range.
    await sh(a.id, "sleep 4242 >/dev/null 2>&1 & true");
    await sh(b.id, "sleep 4243 >/dev/null 2>&1 & true");
    const pa = await hostProcOf("sleep 4242");
    const pb = await hostProcOf("sleep 4243");
    assert.ok(pa !== undefined && inRange(pa.uid, ba) && !inRange(pa.uid, bb), `sleep in a runs as ${pa?.uid}`);
    assert.ok(pb !== undefined && inRange(pb.uid, bb) && !inRange(pb.uid, ba), `sleep in b runs as ${pb?.uid}`);
    // Files: a persistent container's upper is in its ext4 disk image,
    // mounted only in its own mount namespace: seen from the host through
    // one of its processes' root, with host uids.
    for (const [sb, p, own, other] of [[a, pa, ba, bb], [b, pb, bb, ba]] as const) {
      const root = await fsp.stat(`/proc/${p.pid}/root/root-file`);
      const user = await fsp.stat(`/proc/${p.pid}/root/user-file`);
      assert.equal(root.uid, own);
      assert.equal(user.uid, own + 1000);
      assert.equal(user.gid, own + 1000);
      for (const id of [root.uid, user.uid]) assert.ok(!inRange(id, other), `${sb.name}'s file is owned by a uid of the other sandbox`);
    }
    await t.s.destroy(a.id);
    await t.s.destroy(b.id);
  });

  it("shows the shared layers as root's through id-mapped mounts, without chowning them", async () => {
    const a = await t.s.create({ template: "busybox" });
    const [layer] = await t.s.store.templateLayerDirs("busybox");
    // On the host the layer stays the store's; inside it reads as root's, and is not writable through.
    assert.equal((await fsp.stat(path.join(layer!, "bin"))).uid, t.s.uidBase);
    assert.equal((await sh(a.id, "stat -c '%u %g' /bin /bin/busybox")).out, "0 0\n0 0\n");
    assert.equal((await sh(a.id, "grep -c idmapped /proc/self/mountinfo || true")).out.trim(), "0", "the lower mounts are not in the sandbox's namespace");
    assert.equal((await sh(a.id, "echo changed > /bin/added && rm /bin/cat && echo ok")).out, "ok\n");
    assert.equal((await fsp.stat(path.join(layer!, "bin"))).uid, t.s.uidBase);
    await assert.rejects(fsp.access(path.join(layer!, "bin/added")));
    await t.s.destroy(a.id);
  });

  it("keeps a persistent sandbox's range across stop/start, a reopened state dir and promote; frees it on destroy", async () => {
    const p = await t.s.create({ template: "busybox", lifetime: { mode: "persistent" } });
    const base = t.s.uidBaseOf(p.id);
    assert.equal((await sh(p.id, "mkdir -p /home/u && chown 1000 /home/u && echo kept > /home/u/f && chown 1000 /home/u/f && echo ok")).out, "ok\n");
    await t.s.stop(p.id);
    await t.s.start(p.id);
    assert.equal(t.s.uidBaseOf(p.id), base);
    // Another process on the state dir (a restarted daemon) sees the same range and can restart it.
    const again = await Sandboxes.open({ stateDir: t.stateDir, cgroupParent: t.cgroupParent });
    try {
      assert.equal(again.uidBaseOf(p.id), base);
      await again.stop(p.id);
      await again.start(p.id);
      assert.equal((await sh(p.id, "stat -c %u /home/u/f && cat /home/u/f && su -s /bin/sh nobody -c true; echo more >> /home/u/f && echo ok", again)).out, "1000\nkept\nok\n");
    } finally {
      again.close();
    }
    // An ephemeral one promoted keeps its range too.
    const e = await t.s.create({ template: "busybox" });
    const eb = t.s.uidBaseOf(e.id);
    t.s.promote(e.id);
    assert.equal(t.s.uidBaseOf(e.id), eb);
    // Destroy frees the range: the next sandbox takes the lowest free one.
    await t.s.destroy(p.id);
    const next = await t.s.create({ template: "busybox" });
    assert.equal(t.s.uidBaseOf(next.id), Math.min(base, eb));
    await t.s.destroy(next.id);
    await t.s.destroy(e.id);
  });

  it("gives a pooled sandbox its range before the claim, and the claim keeps it", async () => {
    const key = t.s.pools.set("busybox", {}, 1).key;
    await t.s.refillPools();
    const [pooled] = t.s.pools.waiting(key);
    assert.ok(pooled);
    const before = t.s.uidBaseOf(pooled.id, { tenant: "_pool" });
    const claimed = await t.s.create({ template: "busybox" });
    assert.equal(claimed.id, pooled.id, "the create did not come from the pool");
    assert.equal(t.s.uidBaseOf(claimed.id), before);
    assert.equal((await sh(claimed.id, "cat /proc/self/uid_map")).out.trim().split(/\s+/)[1], String(before));
    t.s.pools.set("busybox", {}, 0);
    await t.s.refillPools();
    await t.s.destroy(claimed.id);
  });

  it("commits a sandbox's files into a layer owned by the store's range", async () => {
    const p = await t.s.create({ template: "busybox", lifetime: { mode: "persistent" } });
    await sh(p.id, "echo c > /committed && touch /by-user && chown 1000 /by-user");
    const tpl = await t.s.commit(p.id, "uid-commit");
    const top = t.s.store.layerDir(tpl.layers[tpl.layers.length - 1]!);
    assert.equal((await fsp.stat(path.join(top, "committed"))).uid, t.s.uidBase);
    assert.equal((await fsp.stat(path.join(top, "by-user"))).uid, t.s.uidBase + 1000);
    const c = await t.s.create({ template: "uid-commit" });
    assert.equal((await sh(c.id, "stat -c %u /committed /by-user")).out, "0\n1000\n");
    await t.s.destroy(c.id);
    await t.s.destroy(p.id);
  });
});
