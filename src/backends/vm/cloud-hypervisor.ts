import path from "node:path";
import { InvalidArgumentError } from "../../core/errors.js";
import type { VmPlan } from "./plan.js";
import { apiCall, apiRequest } from "./vmm-api.js";
import { HybridVsockVm, hybridVsock, vsockCmdline, type LaunchOptions, type RunningVm, type VmmDriver } from "./vmm-driver.js";
import { removeStale, spawnVmm, vmmAvailability, waitForApi, waitOrKill, type Availability } from "./vmm-host.js";

/**
 * Cloud Hypervisor from a VmPlan: the `vm.create` body for its REST API
 * and the equivalent command line, both rendered from the same plan.
 * Devices are virtio-pci; the agent is reached over hybrid vsock (the
 * plan's `agent.uds`). Schema: schemas/cloud-hypervisor.schema.ts.
 */

export const CH_BINARY = "cloud-hypervisor";
const MiB = 1024 * 1024;

/** The subset of CH's VmConfig corral fills in. */
export interface ChVmConfig {
  readonly payload: { readonly kernel: string; readonly initramfs: string; readonly cmdline: string };
  readonly cpus: { readonly boot_vcpus: number; readonly max_vcpus: number };
  /** Bytes. */
  readonly memory: { readonly size: number };
  readonly disks: readonly { readonly path: string; readonly readonly: boolean; readonly id: string }[];
  readonly net?: readonly { readonly tap: string; readonly mac: string; readonly id: string }[];
  readonly vsock: { readonly cid: number; readonly socket: string };
  readonly serial: { readonly mode: "File"; readonly file: string };
  readonly console: { readonly mode: "Off" };
}

export function chVmConfig(plan: VmPlan): ChVmConfig {
  const v = hybridVsock(plan, "Cloud Hypervisor");
  return {
    payload: { kernel: plan.kernel, initramfs: plan.initrd, cmdline: vsockCmdline(plan, v.port) },
    cpus: { boot_vcpus: plan.vcpus, max_vcpus: plan.vcpus },
    memory: { size: plan.memoryMiB * MiB },
    disks: plan.disks.map((d) => ({ path: d.path, readonly: d.readOnly, id: d.id })),
    ...(plan.net ? { net: [{ tap: plan.net.tap, mac: plan.net.mac, id: "net0" }] } : {}),
    vsock: { cid: v.cid, socket: v.uds },
    serial: { mode: "File", file: plan.consoleLog },
    console: { mode: "Off" },
  };
}

/**
 * The same VM as a `cloud-hypervisor` command line (boots at once, no API
 * calls needed). Option values are `key=value` lists split at commas, so a
 * path holding a comma cannot be written here: it is refused.
 */
export function chCommandLine(plan: VmPlan, opts: { apiSocket?: string } = {}): string[] {
  const c = chVmConfig(plan);
  const p = (s: string) => {
    if (s.includes(",")) throw new InvalidArgumentError(`cloud-hypervisor options cannot hold a path with a comma: ${s}`);
    return s;
  };
  const args: string[] = [];
  if (opts.apiSocket) args.push("--api-socket", `path=${p(opts.apiSocket)}`);
  args.push("--kernel", c.payload.kernel, "--initramfs", c.payload.initramfs, "--cmdline", c.payload.cmdline);
  args.push("--cpus", `boot=${c.cpus.boot_vcpus}`, "--memory", `size=${plan.memoryMiB}M`);
  if (c.disks.length) {
    args.push("--disk", ...c.disks.map((d) => `path=${p(d.path)},readonly=${d.readonly ? "on" : "off"},id=${d.id}`));
  }
  if (c.net) args.push("--net", ...c.net.map((n) => `tap=${n.tap},mac=${n.mac},id=${n.id}`));
  args.push("--vsock", `cid=${c.vsock.cid},socket=${p(c.vsock.socket)}`);
  args.push("--serial", `file=${p(c.serial.file)}`, "--console", "off");
  return args;
}

/**
 * Runs a plan under Cloud Hypervisor: starts the VMM with only an API
 * socket in `dir`, then `vm.create` with chVmConfig and `vm.boot`, then
 * waits for the agent through the vsock socket. Cannot run on hosts
 * without the binary or a KVM that boots the plan's kernel.
 */
export class CloudHypervisorDriver implements VmmDriver {
  readonly name = CH_BINARY;

  available(): Availability {
    return vmmAvailability(CH_BINARY, "docs/vm-drivers.md");
  }

  async launch(plan: VmPlan, dir: string, opts: LaunchOptions = {}): Promise<RunningVm> {
    const config = chVmConfig(plan);
    const v = hybridVsock(plan, "Cloud Hypervisor");
    const api = path.join(dir, "ch-api.sock");
    const log = path.join(dir, "ch.log");
    removeStale(api, v.uds); // the VMM will not bind over an existing socket
    const pid = spawnVmm(this.available(), ["--api-socket", `path=${api}`], log);
    const vm = new ChVm(pid, api, v.uds, v.port);
    try {
      await waitForApi(pid, api, { method: "GET", path: "/api/v1/vmm.ping" }, log);
      await apiCall("cloud-hypervisor vm.create", api, { method: "PUT", path: "/api/v1/vm.create", body: config });
      await apiCall("cloud-hypervisor vm.boot", api, { method: "PUT", path: "/api/v1/vm.boot" });
      (await vm.agent(opts.agentTimeoutMs ?? 30_000)).close();
    } catch (e) {
      await vm.stop(0);
      throw e;
    }
    return vm;
  }
}

class ChVm extends HybridVsockVm {
  /**
   * `vm.shutdown` (stops the guest at once: it is not asked to sync, so a
   * caller keeping a writable disk runs `sync` through the agent first),
   * `vmm.shutdown` (the process exits), SIGKILL if it is still there after
   * the grace.
   */
  async stop(graceMs = 5000): Promise<void> {
    for (const p of ["/api/v1/vm.shutdown", "/api/v1/vmm.shutdown"]) {
      await apiRequest(this.apiSocket, { method: "PUT", path: p }, 2000).catch(() => undefined);
    }
    await waitOrKill(this.pid, graceMs);
  }
}
