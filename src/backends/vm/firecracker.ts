import fs from "node:fs";
import path from "node:path";
import { InvalidArgumentError } from "../../core/errors.js";
import type { VmPlan } from "./plan.js";
import { apiCall, apiRequest, type ApiCall } from "./vmm-api.js";
import { HybridVsockVm, hybridVsock, vsockCmdline, type LaunchOptions, type RunningVm, type VmmDriver } from "./vmm-driver.js";
import { removeStale, spawnVmm, vmmAvailability, waitForApi, waitOrKill, type Availability } from "./vmm-host.js";

/**
 * Firecracker from a VmPlan: the API calls that configure and start the
 * microVM, and the equivalent `--config-file` document, both rendered from
 * the same plan. Devices are virtio-mmio; the agent is reached over hybrid
 * vsock. Schema: schemas/firecracker.schema.ts.
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
    "boot-source": { kernel_image_path: plan.kernel, initrd_path: plan.initrd, boot_args: vsockCmdline(plan, v.port) },
    "machine-config": { vcpu_count: plan.vcpus, mem_size_mib: plan.memoryMiB, smt: false },
    drives: plan.disks.map((d) => ({ drive_id: d.id, path_on_host: d.path, is_root_device: false, is_read_only: d.readOnly })),
    "network-interfaces": plan.net ? [{ iface_id: "net0", host_dev_name: plan.net.tap, guest_mac: plan.net.mac }] : [],
    vsock: { guest_cid: v.cid, uds_path: v.uds },
  };
}

/** The same configuration as the API calls a client makes, ending with InstanceStart. */
export function fcApiCalls(plan: VmPlan): ApiCall[] {
  const c = fcConfigFile(plan);
  return [
    { method: "PUT", path: "/boot-source", body: c["boot-source"] },
    { method: "PUT", path: "/machine-config", body: c["machine-config"] },
    ...c.drives.map((d): ApiCall => ({ method: "PUT", path: `/drives/${encodeURIComponent(d.drive_id)}`, body: d })),
    ...c["network-interfaces"].map(
      (n): ApiCall => ({ method: "PUT", path: `/network-interfaces/${encodeURIComponent(n.iface_id)}`, body: n }),
    ),
    { method: "PUT", path: "/vsock", body: c.vsock },
    { method: "PUT", path: "/actions", body: { action_type: "InstanceStart" } },
  ];
}

/**
 * Runs a plan under Firecracker with its API socket in `dir`: either the
 * API calls one by one (default) or, with `configFile`, the document in
 * `dir/fc-config.json` (Firecracker then boots by itself and the API stays
 * open for stop). Guest serial output and Firecracker's own messages go to
 * the plan's console log (the process's stdout and stderr). Cannot run on
 * hosts without the binary or a KVM that boots the plan's kernel.
 */
export class FirecrackerDriver implements VmmDriver {
  readonly name = FC_BINARY;

  constructor(private readonly opts: { readonly configFile?: boolean } = {}) {}

  available(): Availability {
    return vmmAvailability(FC_BINARY, "docs/vm-drivers.md");
  }

  async launch(plan: VmPlan, dir: string, opts: LaunchOptions = {}): Promise<RunningVm> {
    const calls = fcApiCalls(plan);
    const v = hybridVsock(plan, "Firecracker");
    const api = path.join(dir, "fc-api.sock");
    removeStale(api, v.uds); // Firecracker will not bind over an existing socket
    const args = ["--api-sock", api];
    if (this.opts.configFile) {
      const file = path.join(dir, "fc-config.json");
      fs.writeFileSync(file, JSON.stringify(fcConfigFile(plan), null, 2));
      args.push("--config-file", file);
    }
    const pid = spawnVmm(this.available(), args, plan.consoleLog);
    const vm = new FcVm(pid, api, v.uds, v.port);
    try {
      await waitForApi(pid, api, { method: "GET", path: "/" }, plan.consoleLog);
      if (!this.opts.configFile) {
        for (const c of calls) await apiCall("firecracker", api, c);
      }
      (await vm.agent(opts.agentTimeoutMs ?? 30_000)).close();
    } catch (e) {
      await vm.stop(0);
      throw e;
    }
    return vm;
  }
}

class FcVm extends HybridVsockVm {
  /**
   * SendCtrlAltDel (x86 only: the guest's i8042 driver sees it; with
   * `reboot=k` on its command line the guest's reset ends Firecracker),
   * then SIGKILL if the process is still there after the grace.
   */
  async stop(graceMs = 5000): Promise<void> {
    await apiRequest(this.apiSocket, { method: "PUT", path: "/actions", body: { action_type: "SendCtrlAltDel" } }, 2000).catch(
      () => undefined,
    );
    await waitOrKill(this.pid, graceMs);
  }
}
