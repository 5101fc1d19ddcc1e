// What a QEMU snapshot records and what a restore starts: the saved VM's
// arguments with its own directory and identity as marks, given back as
// the restored VM's own (directory, MAC, tap, uid) plus -incoming on fd 5.
import { test } from "node:test";
import assert from "node:assert/strict";
import { vmIdentity } from "./identity.js";
import { qemuDriver } from "./qemu-driver.js";
import { DIR_MARK, markArgs, qemuSnapshots, runAsOf, unmarkArgs } from "./qemu-snapshot.js";
import type { VmPlan } from "./plan.js";
import { samplePlan } from "./vmm-fixtures.js";

/** The plan of sandbox `name` (its hostname) in its own dir, as vm-plan.ts makes it, with a network device so the identity reaches the arguments. */
function planOf(name: string): { plan: VmPlan; dir: string } {
  const dir = `/var/lib/corral/sandboxes/${name}`;
  const base = samplePlan(name, { net: true, virtioSerial: true });
  return { dir, plan: { ...base, cmdline: `console=ttyS0 corral.hostname=${name} corral.upper=tmpfs`, disks: [{ id: "root", path: "/var/lib/corral/store/images/0123abcd.erofs", readOnly: true }] } };
}
const launchOf = (name: string, uid: number) => {
  const { plan, dir } = planOf(name);
  return { dir, plan, launch: qemuDriver.render(plan, { dir, accel: "tcg", runAs: uid }) };
};

test("a snapshot records the arguments with the VM's directory and identity as marks", () => {
  const { dir, plan, launch } = launchOf("src-vm", 1001);
  const saved = qemuSnapshots.portable(launch, dir);
  const text = saved.join(" ");
  assert.equal(text.includes(dir), false);
  for (const own of [plan.identity.mac, plan.identity.tap]) assert.equal(text.includes(own), false, own);
  assert.ok(saved.includes(`unix:${DIR_MARK}/qmp.sock,server=on,wait=off`));
  assert.ok(saved.includes("tap,id=net0,ifname=@TAP@,script=no,downscript=no"));
  assert.ok(saved.includes("virtio-net-device,netdev=net0,mac=@MAC@"));
  assert.deepEqual(unmarkArgs(saved, dir, plan.identity), launch.args, "marks undone give the same arguments back");
});

test("a restored VM gets its own directory, identity and uid, and -incoming on fd 5", () => {
  const src = launchOf("src-vm", 1001);
  const saved = qemuSnapshots.portable(src.launch, src.dir);
  const dir = "/var/lib/corral/sandboxes/copy-a";
  const identity = vmIdentity("copy-a");
  const r = qemuSnapshots.restore(saved, "/var/lib/corral/vm/saved/x/memory", { dir, identity, runAs: 2002 });
  const text = r.args.join(" ");
  for (const theirs of [src.dir, src.plan.identity.mac, src.plan.identity.tap]) assert.equal(text.includes(theirs), false, theirs);
  assert.ok(r.args.includes(`tap,id=net0,ifname=${identity.tap},script=no,downscript=no`));
  assert.ok(r.args.includes(`virtio-net-device,netdev=net0,mac=${identity.mac}`));
  assert.ok(r.args.includes(`unix:${dir}/qmp.sock,server=on,wait=off`));
  assert.equal(runAsOf(r.args), 2002);
  assert.deepEqual(r.identity, identity);
  assert.deepEqual(r.incoming, { file: "/var/lib/corral/vm/saved/x/memory", args: ["-incoming", "fd:5"] });
  assert.equal(r.args.includes("-incoming"), false, "-incoming is this start's only: not recorded for a snapshot of the copy");
  assert.deepEqual([r.vmm, r.wiring, r.guestStop], ["qemu", { kind: "fds" }, "poweroff"]);
  // The copy's own arguments are what its own cold boot would have, but for the saved command line.
  const own = launchOf("copy-a", 2002);
  assert.deepEqual(r.args.filter((a) => !a.includes("corral.hostname")), own.launch.args.filter((a) => !a.includes("corral.hostname")));
});

test("VMs of one shape share a snapshot whatever their name, directory and uid", () => {
  const shape = (name: string, uid: number) => {
    const { dir, launch } = launchOf(name, uid);
    return qemuSnapshots.shape(qemuSnapshots.portable(launch, dir), name);
  };
  assert.equal(shape("pool-aaaa", 1001), shape("pool-bbbb", 2002));
  const { dir, plan } = planOf("pool-cccc");
  const bigger = qemuDriver.render({ ...plan, memoryMiB: 1024 }, { dir, accel: "tcg", runAs: 1 });
  assert.notEqual(qemuSnapshots.shape(qemuSnapshots.portable(bigger, dir), "pool-cccc"), shape("pool-aaaa", 1001), "memory is part of the shape");
});

test("networked VMs of one shape share a snapshot whatever their address (a copy is moved to its own)", () => {
  const shape = (name: string, address: string) => {
    const { dir, plan } = planOf(name);
    const launch = qemuDriver.render({ ...plan, cmdline: `${plan.cmdline} corral.net=${address}/16,10.213.0.1,10.213.0.1 quiet` }, { dir, accel: "tcg", runAs: 1 });
    return qemuSnapshots.shape(qemuSnapshots.portable(launch, dir), name);
  };
  assert.equal(shape("pool-aaaa", "10.213.0.5"), shape("pool-bbbb", "10.213.0.6"));
  assert.notEqual(shape("pool-aaaa", "10.213.0.5"), qemuSnapshots.shape(qemuSnapshots.portable(launchOf("pool-aaaa", 1).launch, planOf("pool-aaaa").dir), "pool-aaaa"), "a VM without a network is another shape");
});

test("marks are whole option values: a path that contains the text is left alone", () => {
  const id = vmIdentity("x");
  const args = ["-drive", `file=/images/${id.tap}.img`, "-device", `virtio-net-device,mac=${id.mac}`];
  assert.deepEqual(markArgs(args, "/nowhere", id), ["-drive", `file=/images/${id.tap}.img`, "-device", "virtio-net-device,mac=@MAC@"]);
  assert.equal(runAsOf(["-m", "1"]), undefined);
});
