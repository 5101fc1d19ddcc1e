// microVM sandboxes under QEMU (TCG on these hosts: see DESIGN.md): the
// shared backend cases, plus what only a VM has: its own kernel, a crash
// reported as one, a persistent disk image that outlives stop/start.
import { it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { sandboxCases } from "./shared/sandbox-cases.js";
import { findLeaks } from "../helpers/leaks.js";

sandboxCases("vm", (ctx) => {
  it("runs its own kernel, not the host's", async () => {
    const { sh } = ctx();
    const r = await sh("uname -r");
    assert.equal(r.exitCode, 0);
    assert.notEqual(r.stdout.trim(), os.release());
    assert.match(r.stdout, /cloud-amd64/);
    // Booted as the uncompressed ELF from Debian's bzImage (direct PVH entry), not the bzImage.
    const { t, sb } = ctx();
    const qemu = Number(fs.readFileSync(path.join(t.stateDir, "sandboxes", sb.id, "vmm.pid"), "utf8"));
    assert.match(fs.readFileSync(`/proc/${qemu}/cmdline`, "utf8"), /\/vmlinux\0/);
  });

  it("has the vCPUs its spec asks for", async () => {
    const { t, sh } = ctx();
    // Several vCPUs under TCG take QEMU's multi-threaded TCG (-accel
    // tcg,thread=multi), which QEMU refuses beside -M accel=.
    const sb = await t.s.create({ template: "busybox", backend: "vm", resources: { vcpus: 2, memory: "128M" } });
    try {
      assert.equal((await sh("grep -c ^processor /proc/cpuinfo", sb.id)).stdout, "2\n");
    } finally {
      await t.s.destroy(sb.id);
    }
  });

  it("runs tickless when idle: one-shot timers, not HZ interrupts", async () => {
    const { sh } = ctx();
    // Without an always-running APIC timer (ARAT) and no HPET the guest
    // ticks at HZ forever, costing an idle VM several % of a host core.
    // The guest switches to high-resolution one-shot mode once its
    // clocksource is rated stable, which a loaded host can delay past the
    // first command: read it until it has (or 20 s have passed).
    const read = () => sh("grep -m1 nohz_mode /proc/timer_list; grep -m1 event_handler /proc/timer_list");
    let r = await read();
    for (let i = 0; i < 40 && !/nohz_mode\s*:\s*2/.test(r.stdout); i++) {
      await new Promise((res) => setTimeout(res, 500));
      r = await read();
    }
    assert.match(r.stdout, /nohz_mode\s*:\s*2/);
    assert.match(r.stdout, /hrtimer_interrupt/);
  });

  it("runs QEMU confined: not root, under a seccomp filter, no new privileges", async () => {
    const { t, sb } = ctx();
    const pid = Number(fs.readFileSync(path.join(t.stateDir, "sandboxes", sb.id, "vmm.pid"), "utf8"));
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1).map(Number);
    // The root of the sandbox's own uid range (runtime/uid-ranges.ts): no other sandbox has it.
    assert.ok(uids.every((u) => u === t.s.uidBaseOf(sb.id) && u > t.s.uidBase + 65535), `QEMU uids ${uids.join(",")}`);
    assert.match(status, /^Seccomp:\s+2$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(status, /^CapEff:\s+0+$/m);
  });

  it("boots from the template's shared read-only erofs image", async () => {
    const { t, sh } = ctx();
    const images = fs.readdirSync(path.join(t.stateDir, "store", "images")).filter((f) => f.endsWith(".erofs"));
    assert.equal(images.length, 1);
    // The image is the disk with serial corral-root, attached read-only.
    // It reads ahead 2 MiB at a time: its device's optimal I/O size is 1 MiB.
    const disks = (await sh("for b in /sys/block/vd*; do echo $(cat $b/serial) $(cat $b/ro) $(cat $b/queue/read_ahead_kb); done")).stdout;
    assert.match(disks, /^corral-root 1 2048$/m);
    assert.match((await sh("grep -w erofs /proc/filesystems")).stdout, /erofs/);
    // Owners are the template's own inside the guest (the store's shift undone).
    assert.equal((await sh("stat -c %u:%g /bin/busybox")).stdout, "0:0\n");
  });

  it("reports a guest kernel panic as a crash, and removal leaves nothing", async () => {
    const { t } = ctx();
    const sb = await t.s.create({ template: "busybox", backend: "vm" });
    await t.s.exec(sb.id, { cmd: "echo c > /proc/sysrq-trigger" }).catch(() => undefined);
    let status = "";
    for (let i = 0; i < 300 && status !== "crashed"; i++) {
      status = (await t.s.get(sb.id)).status;
      if (status !== "crashed") await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, "crashed");
    assert.match(await t.s.logs(sb.id), /Kernel panic|sysrq/i, "the console shows why it crashed");
    await t.s.destroy(sb.id);
    const leaks = await findLeaks(t.stateDir, t.cgroupParent, t.s.cgroupMode);
    assert.deepEqual(leaks.filter((l) => l.includes(sb.id)), []);
  });

  it("keeps a persistent VM's disk across stop and start", async () => {
    const { t, sh } = ctx();
    const sb = await t.s.create({ template: "busybox", backend: "vm", lifetime: { mode: "persistent" }, resources: { disk: "64M" } });
    assert.equal((await sh("echo kept > /root.txt && sync && cat /root.txt", sb.id)).stdout, "kept\n");
    await t.s.stop(sb.id);
    assert.equal((await t.s.get(sb.id)).status, "stopped");
    await t.s.start(sb.id);
    assert.equal((await sh("cat /root.txt; df -k / | tail -1 | awk '{print $2}'", sb.id)).stdout.split("\n")[0], "kept");
    // Its writes become a template (one store for both backends): a container sees them.
    assert.equal((await sh("rm /bin/cat && echo ok", sb.id)).stdout, "ok\n");
    await t.s.commit(sb.id, "from-vm");
    const c = await t.s.create({ template: "from-vm" });
    assert.equal((await sh("head -1 /root.txt; test -e /bin/cat && echo cat || echo no-cat", c.id)).stdout, "kept\nno-cat\n");
    await t.s.destroy(c.id);
    await t.s.destroy(sb.id);
  });
});
