// QEMU command lines from VmPlans: the payload tests Cloud Hypervisor's
// and Firecracker's have (units, flags, order, identity), for the driver
// every VM runs on by default. What QEMU does with them is checked by the
// VM functional suites (vm-sandbox, vm-snapshots, vm-drivers).
import { test } from "node:test";
import assert from "node:assert/strict";
import { qemuArgs, QEMU, withRunAs, confinement } from "./qemu.js";
import { qemuDriver } from "./qemu-driver.js";
import { samplePlan } from "./vmm-fixtures.js";

const DIR = "/var/lib/corral/sandboxes/pet-with-net";
const QMP = `${DIR}/qmp.sock`;

/** The value after each occurrence of `flag`. */
const values = (args: readonly string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

test("machine, accelerator, CPU, vCPUs and memory (MiB, with its unit)", () => {
  const kvm = qemuArgs(samplePlan("a", { vcpus: 4, memoryMiB: 2048, virtioSerial: true }), "kvm", QMP);
  assert.deepEqual(values(kvm, "-M"), ["microvm,rtc=on"]);
  assert.deepEqual(values(kvm, "-accel"), ["kvm"]);
  assert.deepEqual(values(kvm, "-cpu"), ["host"]);
  assert.deepEqual(values(kvm, "-smp"), ["4"]);
  assert.deepEqual(values(kvm, "-m"), ["2048M"]);
  const tcg1 = qemuArgs(samplePlan("a", { vcpus: 1, memoryMiB: 128, virtioSerial: true }), "tcg", QMP);
  assert.deepEqual(values(tcg1, "-accel"), ["tcg"], "one vCPU: one TCG thread");
  assert.deepEqual(values(tcg1, "-cpu"), ["qemu64,+arat,+rdrand"]);
  assert.deepEqual([values(tcg1, "-smp"), values(tcg1, "-m")], [["1"], ["128M"]]);
  const tcg2 = qemuArgs(samplePlan("a", { vcpus: 2, virtioSerial: true }), "tcg", QMP);
  assert.deepEqual(values(tcg2, "-accel"), ["tcg,thread=multi"], "several vCPUs under TCG: a host thread each");
  assert.equal(tcg2.some((a) => /(^|,)accel=/.test(a)), false, "never -M accel= beside -accel (QEMU refuses both)");
  assert.deepEqual(values(qemuArgs(samplePlan("a", { vcpus: 8, virtioSerial: true }), "kvm", QMP), "-accel"), ["kvm"], "KVM takes no thread option");
});

test("kernel, initrd, command line; no defaults, no reboot, no graphics", () => {
  const p = samplePlan("a", { virtioSerial: true });
  const args = qemuArgs(p, "tcg", QMP);
  assert.deepEqual([values(args, "-kernel"), values(args, "-initrd"), values(args, "-append")], [[p.kernel], [p.initrd], [p.cmdline]]);
  for (const f of ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]) assert.ok(args.includes(f), f);
  assert.deepEqual(values(args, "-qmp"), [`unix:${QMP},server=on,wait=off`]);
});

test("agent port and console on the shim's fds 3 and 4", () => {
  const args = qemuArgs(samplePlan("a", { virtioSerial: true }), "tcg", QMP);
  assert.deepEqual(values(args, "-chardev"), ["socket,id=console,fd=4", "socket,id=agent,fd=3"]);
  assert.deepEqual(values(args, "-serial"), ["chardev:console"]);
  assert.deepEqual(values(args, "-device").slice(0, 3), [
    "virtio-serial-device,max_ports=2",
    "virtserialport,chardev=agent,name=org.corral.agent",
    "virtio-rng-device",
  ]);
  assert.throws(() => qemuArgs(samplePlan("a"), "tcg", QMP), /QEMU driver speaks to the agent over virtio-serial/);
});

test("disks in plan order: the template image read-only with its I/O size, the data disk writable", () => {
  const p = samplePlan("pet-with-net", { persistent: true, virtioSerial: true });
  const args = qemuArgs(p, "tcg", QMP);
  assert.deepEqual(values(args, "-drive"), [
    `id=root,file=${p.disks[0]!.path},format=raw,if=none,readonly=on`,
    `id=data,file=${DIR}/data.img,format=raw,if=none,cache=writeback`,
  ]);
  assert.deepEqual(values(args, "-device").filter((d) => d.startsWith("virtio-blk")), [
    "virtio-blk-device,drive=root,serial=corral-root,opt_io_size=1048576",
    "virtio-blk-device,drive=data,serial=corral-data",
  ]);
  assert.deepEqual(values(qemuArgs(samplePlan("a", { virtioSerial: true }), "tcg", QMP), "-drive").length, 1, "ephemeral: the template image only");
});

test("identity: the tap and MAC of the plan's network device", () => {
  const p = samplePlan("pet-with-net", { net: true, virtioSerial: true });
  const args = qemuArgs(p, "kvm", QMP);
  assert.deepEqual(values(args, "-netdev"), [`tap,id=net0,ifname=${p.identity.tap},script=no,downscript=no`]);
  assert.ok(values(args, "-device").includes(`virtio-net-device,netdev=net0,mac=${p.identity.mac}`));
  assert.deepEqual(values(qemuArgs(samplePlan("a", { virtioSerial: true }), "kvm", QMP), "-netdev"), [], "no network, no device");
});

test("confinement first: seccomp -sandbox, and -runas its own uid when given", () => {
  const p = samplePlan("a", { virtioSerial: true });
  const args = qemuArgs(p, "tcg", QMP, 1234567);
  assert.deepEqual(args.slice(0, 4), ["-sandbox", "on,obsolete=deny,resourcecontrol=deny", "-runas", "1234567:1234567"]);
  assert.equal(args.filter((a) => a === "-runas").length, 1);
  assert.equal(args.some((a) => a.includes("elevateprivileges")), false, "elevateprivileges=deny would forbid -runas's own setuid");
  const root = qemuArgs(p, "tcg", QMP);
  assert.deepEqual(root.slice(0, 2), ["-sandbox", "on,obsolete=deny,resourcecontrol=deny"]);
  assert.equal(root.includes("-runas"), false);
  assert.deepEqual(confinement(undefined), ["-sandbox", "on,obsolete=deny,resourcecontrol=deny"]);
  assert.deepEqual(values(withRunAs(args, 42), "-runas"), ["42:42"], "a restore runs as its own uid");
  assert.deepEqual(withRunAs(args, 42).length, args.length);
});

test("the driver renders the plan for the shim: fds wiring, QMP in the sandbox dir, poweroff", () => {
  const p = samplePlan("pet-with-net", { persistent: true, virtioSerial: true });
  const l = qemuDriver.render(p, { dir: DIR, accel: "tcg", runAs: 77 });
  assert.deepEqual(l, { vmm: "qemu", binary: QEMU, args: qemuArgs(p, "tcg", QMP, 77), wiring: { kind: "fds" }, guestStop: "poweroff", identity: p.identity });
  assert.equal(l.args.includes("-incoming"), false, "a cold boot: -incoming only on restores");
  assert.equal(qemuDriver.needsKvm, false, "TCG where KVM cannot boot the guest");
  assert.ok(qemuDriver.snapshots);
});
