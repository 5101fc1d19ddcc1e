import { InvalidArgumentError } from "../../core/errors.js";
import type { VmmName } from "../../core/sandbox-spec.js";
import type { VmIdentity } from "./identity.js";
import type { VmPlan } from "./plan.js";
import type { Availability } from "./vmm-host.js";
import type { VmHelper } from "./vm-virtiofs.js";

/** The accelerator a VM runs under: KVM, or QEMU's TCG emulation (QEMU only). */
export type Accel = "kvm" | "tcg";

/**
 * A hypervisor that can run a VmPlan: QEMU (qemu-driver.ts), Cloud
 * Hypervisor (cloud-hypervisor.ts), Firecracker (firecracker.ts); the spec's
 * `vmm` picks one (vmm-drivers.ts). A driver renders the plan into a
 * VmmLaunch, which the VM's shim (shim.ts) runs whatever the driver: it
 * owns the VMM process, its console and the sandbox's agent socket.
 */
export interface VmmDriver {
  readonly name: VmmName;
  readonly binary: string;
  /** How its guests reach the agent; the backend plans the channel from it. */
  readonly agent: "virtio-serial" | "hybrid-vsock";
  /** KVM only (CH, FC), or TCG as well where KVM cannot boot the guest (QEMU). */
  readonly needsKvm: boolean;
  /** Guest kernel modules its devices need beyond kernel.ts GUEST_MODULES (CH: virtio-pci), packed into its initrd only. */
  readonly guestModules?: readonly string[];
  /** The binary is on PATH and, if it needs KVM, /dev/kvm is usable (not that a guest boots). */
  available(): Availability;
  /** The VMM process of `plan`'s VM, as the shim runs it. */
  render(plan: VmPlan, o: RenderOptions): VmmLaunch;
  /** Saving a running VM and starting new ones from the save; absent where corral cannot with this VMM. */
  readonly snapshots?: VmmSnapshots;
}

export interface RenderOptions {
  /** The sandbox's directory: the VMM's control sockets and files live there. */
  readonly dir: string;
  readonly accel: Accel;
  /** The unprivileged uid the VMM drops root to, where it can (QEMU's -runas). */
  readonly runAs?: number | undefined;
}

/** How the shim wires a VMM process to the VM's console and agent socket. */
export type VmmWiring =
  /** The agent's virtio-serial port on the VMM's fd 3 and the serial console on fd 4: socketpair ends only the shim holds (QEMU). */
  | { readonly kind: "fds" }
  /**
   * The serial console on the VMM's stdout, the agent behind its hybrid
   * vsock socket `uds`: the shim serves agent.sock by opening one vsock
   * connection to `port` per client (CH, FC).
   */
  | { readonly kind: "hybrid-vsock"; readonly uds: string; readonly port: number };

/** One VMM process, rendered by a driver from a plan; what a VM's vm.json holds besides the shim's own settings. */
export interface VmmLaunch {
  readonly vmm: VmmName;
  readonly binary: string;
  readonly args: readonly string[];
  readonly wiring: VmmWiring;
  /** Files the VMM reads as it starts (Firecracker's config document): path → content, written before the shim runs it. */
  readonly files?: Readonly<Record<string, string>>;
  /** The busybox applet that ends the guest after a sync so that the VMM exits (QEMU, CH: poweroff; FC: reboot). */
  readonly guestStop: "poweroff" | "reboot";
  /** The identity its device properties carry (MAC, tap, vsock CID): the plan's. */
  readonly identity: VmIdentity;
  /** Processes the VMM connects to as it starts (a share's virtiofsd): the shim starts them first and ends them with it. */
  readonly helpers?: readonly VmHelper[];
}

/**
 * Snapshots with one VMM (QEMU's: qemu-snapshot.ts). A snapshot records the
 * saved VM's launch in a portable form (its directory and identity as
 * marks), so a restore can start a VMM with the same devices as the saved
 * one, in its own directory and under its own identity.
 */
export interface VmmSnapshots {
  /**
   * Saves the running VM in `dir` (started as `launch`) into the empty
   * directory `out`: memory and device state as `out/memory`, its own disk
   * image as `out/disk.img` if it has one. The VM runs on.
   */
  save(dir: string, out: string, launch: VmmLaunch): Promise<void>;
  /** `launch`'s arguments with the VM's own directory and identity replaced by marks. */
  portable(launch: VmmLaunch, dir: string): string[];
  /** What two VMs must share to be restorable from one snapshot, from the portable arguments: all but the hostname and the uid. */
  shape(portableArgs: readonly string[], hostname: string): string;
  /**
   * The launch that starts a VM in `dir`, with `identity` and `runAs` its
   * own, from a snapshot with portable arguments `saved` whose state is
   * the file `memory`.
   */
  restore(saved: readonly string[], memory: string, o: { dir: string; identity: VmIdentity; runAs: number | undefined }): RestoreLaunch;
}

export interface RestoreLaunch extends VmmLaunch {
  /** This start only: the VMM reads the saved state from `file`, on its fd 5, with `args` added to its own. */
  readonly incoming: { readonly file: string; readonly args: readonly string[] };
}

/**
 * The plan's kernel command line with `corral.vsock=PORT`, which has the
 * guest's init load the vsock modules and start the agent on that port
 * (the only channel CH and FC give it).
 */
export function vsockCmdline(plan: VmPlan, port: number): string {
  return /(^| )corral\.vsock=/.test(plan.cmdline) ? plan.cmdline : `${plan.cmdline} corral.vsock=${port}`;
}

/** The hybrid vsock channel a CH or FC plan must use. */
export function hybridVsock(plan: VmPlan, vmm: string): { cid: number; port: number; uds: string } {
  const a = plan.agent;
  if (a.kind !== "vsock" || a.uds === undefined) {
    throw new InvalidArgumentError(
      `${vmm} reaches the agent over hybrid vsock: the plan for ${plan.name} must have agent {kind: "vsock", uds}, not ${JSON.stringify(a)}`,
    );
  }
  if (Buffer.byteLength(a.uds) > 107) {
    throw new InvalidArgumentError(`${vmm}: the vsock socket path is longer than a unix socket address allows (107 bytes): ${a.uds}`);
  }
  return { cid: a.cid, port: a.port, uds: a.uds };
}
