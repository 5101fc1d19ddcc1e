import type { VmPlan } from "./plan.js";
import { QEMU, qemuArgs } from "./qemu.js";
import { qemuSnapshots } from "./qemu-snapshot.js";
import { shimPaths } from "./shim-files.js";
import type { RenderOptions, VmmDriver, VmmLaunch } from "./vmm-driver.js";
import { vmmAvailability, type Availability } from "./vmm-host.js";

/**
 * QEMU's `microvm` machine (qemu.ts): the default VMM, and the one corral
 * can snapshot (qemu-snapshot.ts). It runs under KVM, or under TCG where
 * KVM cannot boot the guest (accel.ts), so it needs no /dev/kvm. The agent
 * is a virtio-serial port and the console the serial port, both on
 * socketpair ends the shim holds; QMP on `<dir>/qmp.sock`.
 */
export const qemuDriver: VmmDriver = {
  name: "qemu",
  binary: QEMU,
  agent: "virtio-serial",
  needsKvm: false,
  available(): Availability {
    return vmmAvailability(QEMU, false, "apt-get install qemu-system-x86");
  },
  render(plan: VmPlan, o: RenderOptions): VmmLaunch {
    return {
      vmm: "qemu",
      binary: QEMU,
      args: qemuArgs(plan, o.accel, shimPaths(o.dir).qmpSocket, o.runAs),
      wiring: { kind: "fds" },
      guestStop: "poweroff",
      identity: plan.identity,
      ...(plan.shares?.length ? { helpers: plan.shares.map((s) => s.daemon) } : {}),
    };
  },
  snapshots: qemuSnapshots,
};
