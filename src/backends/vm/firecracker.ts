import path from "node:path";
import { InvalidArgumentError } from "../../core/errors.js";
import type { VmPlan } from "./plan.js";
import { hybridVsock, vsockCmdline, type RenderOptions, type VmmDriver, type VmmLaunch } from "./vmm-driver.js";
import { vmmAvailability, type Availability } from "./vmm-host.js";

/**
 * Firecracker from a VmPlan: the `--config-file` document the shim starts
 * it with (`--no-api`: it boots at once and nothing is asked of it after),
 * each part the body of the API call that sets the same (checked against
 * schemas/firecracker.schema.ts). Devices are virtio-mmio; the agent is
 * reached over hybrid vsock; the serial console is the process's stdout,
 * which the shim keeps in the bounded console.log.
 *
 * The plan's kernel must be one Firecracker can load: on x86_64 an
 * uncompressed ELF `vmlinux` (releases before bzImage support landed in
 * 2026 load nothing else), with virtio-mmio, virtio-blk, virtio-net and
 * virtio vsock built in or loadable from the initrd. See docs/vm-drivers.md.
 */

export const FC_BINARY = "firecracker";
/** Firecracker's documented vCPU range. */
const FC_MAX_VCPUS = 32;

export interface FcBootSource {
  readonly kernel_image_path: string;
  readonly initrd_path: string;
  readonly boot_args: string;
}
export interface FcMachineConfig {
  readonly vcpu_count: number;
  /** Mebibytes. */
  readonly mem_size_mib: number;
  readonly smt: false;
}
export interface FcDrive {
  readonly drive_id: string;
  readonly path_on_host: string;
  readonly is_root_device: false;
  readonly is_read_only: boolean;
}
export interface FcNetworkInterface {
  readonly iface_id: string;
  readonly host_dev_name: string;
  readonly guest_mac: string;
}
export interface FcVsock {
  readonly guest_cid: number;
  readonly uds_path: string;
}
export interface FcConfigFile {
  readonly "boot-source": FcBootSource;
  readonly "machine-config": FcMachineConfig;
  readonly drives: readonly FcDrive[];
  readonly "network-interfaces": readonly FcNetworkInterface[];
  readonly vsock: FcVsock;
}

/**
 * The configuration as one document. No drive is the root device: the
 * guest boots from the initrd, and a root drive would make Firecracker
 * append its own `root=` to the command line and move that drive first.
 * Drives keep the plan's order, so the first is /dev/vda.
 */
export function fcConfigFile(plan: VmPlan): FcConfigFile {
  if (plan.vcpus > FC_MAX_VCPUS) {
    throw new InvalidArgumentError(`Firecracker runs at most ${FC_MAX_VCPUS} vCPUs; the plan for ${plan.name} asks for ${plan.vcpus}`);
  }
  const v = hybridVsock(plan, "Firecracker");
  return {
    "boot-source": { kernel_image_path: plan.kernel, initrd_path: plan.initrd, boot_args: fcBootArgs(plan, v.port) },
    "machine-config": { vcpu_count: plan.vcpus, mem_size_mib: plan.memoryMiB, smt: false },
    drives: plan.disks.map((d) => ({ drive_id: d.id, path_on_host: d.path, is_root_device: false, is_read_only: d.readOnly })),
    "network-interfaces": plan.net ? [{ iface_id: "net0", host_dev_name: plan.net.tap, guest_mac: plan.net.mac }] : [],
    vsock: { guest_cid: v.cid, uds_path: v.uds },
  };
}

/**
 * The plan's command line for a Firecracker guest: with `corral.vsock=`,
 * and `reboot=k` for `reboot=t`: a reset through the i8042 keyboard
 * controller is what ends Firecracker (its documented way for a guest to
 * stop it); `panic=-1` then makes a guest panic end it too, seen as a crash.
 */
export function fcBootArgs(plan: VmPlan, port: number): string {
  return vsockCmdline(plan, port)
    .split(" ")
    .map((w) => (w === "reboot=t" ? "reboot=k" : w))
    .join(" ");
}

/** Where the shim's Firecracker reads its configuration: in the sandbox's directory. */
export const fcConfigPath = (dir: string) => path.join(dir, "fc-config.json");

/**
 * The Firecracker driver: `firecracker --no-api --config-file
 * <dir>/fc-config.json` (fcConfigFile). Needs KVM; no snapshots (refused by
 * the backend). The guest ends it with a reset (fcBootArgs).
 */
export const firecrackerDriver: VmmDriver = {
  name: "firecracker",
  binary: FC_BINARY,
  agent: "hybrid-vsock",
  needsKvm: true,
  available(): Availability {
    return vmmAvailability(FC_BINARY, true, "see docs/vm-drivers.md");
  },
  render(plan: VmPlan, o: RenderOptions): VmmLaunch {
    const v = hybridVsock(plan, "Firecracker");
    const file = fcConfigPath(o.dir);
    return {
      vmm: "firecracker",
      binary: FC_BINARY,
      args: ["--no-api", "--config-file", file],
      wiring: { kind: "hybrid-vsock", uds: v.uds, port: v.port },
      files: { [file]: JSON.stringify(fcConfigFile(plan), null, 2) },
      guestStop: "reboot",
      identity: plan.identity,
    };
  },
};
