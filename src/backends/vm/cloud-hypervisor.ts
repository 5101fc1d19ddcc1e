import { InvalidArgumentError } from "../../core/errors.js";
import { PCI_MODULES } from "./kernel.js";
import type { VmPlan } from "./plan.js";
import { hybridVsock, vsockCmdline, type RenderOptions, type VmmDriver, type VmmLaunch } from "./vmm-driver.js";
import { vmmAvailability, type Availability } from "./vmm-host.js";

/**
 * Cloud Hypervisor from a VmPlan: the VM as its REST API's `vm.create`
 * body (checked against schemas/cloud-hypervisor.schema.ts) and the same
 * VM as the command line the shim runs (it boots at once, no API calls).
 * Devices are virtio-pci; the agent is reached over hybrid vsock (the
 * plan's `agent.uds`); the serial console goes to the process's stdout,
 * which the shim keeps in the bounded console.log.
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
  /** The 8250 UART (ttyS0) on the process's stdout. */
  readonly serial: { readonly mode: "Tty" };
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
    serial: { mode: "Tty" },
    console: { mode: "Off" },
  };
}

/**
 * The same VM as a `cloud-hypervisor` command line (boots at once, no API
 * calls needed). Option values are `key=value` lists split at commas, so a
 * path holding a comma cannot be written here: it is refused.
 */
export function chCommandLine(plan: VmPlan): string[] {
  const c = chVmConfig(plan);
  const p = (s: string) => {
    if (s.includes(",")) throw new InvalidArgumentError(`cloud-hypervisor options cannot hold a path with a comma: ${s}`);
    return s;
  };
  const args: string[] = [];
  args.push("--kernel", c.payload.kernel, "--initramfs", c.payload.initramfs, "--cmdline", c.payload.cmdline);
  args.push("--cpus", `boot=${c.cpus.boot_vcpus}`, "--memory", `size=${plan.memoryMiB}M`);
  if (c.disks.length) {
    args.push("--disk", ...c.disks.map((d) => `path=${p(d.path)},readonly=${d.readonly ? "on" : "off"},id=${d.id}`));
  }
  if (c.net) args.push("--net", ...c.net.map((n) => `tap=${n.tap},mac=${n.mac},id=${n.id}`));
  args.push("--vsock", `cid=${c.vsock.cid},socket=${p(c.vsock.socket)}`);
  args.push("--serial", "tty", "--console", "off");
  return args;
}

/**
 * The Cloud Hypervisor driver: `cloud-hypervisor` with chCommandLine (no
 * API socket: nothing is asked of the VMM after boot; the shim stops the
 * guest through its agent, then with signals). Needs KVM; no snapshots
 * (refused by the backend).
 */
export const cloudHypervisorDriver: VmmDriver = {
  name: "cloud-hypervisor",
  binary: CH_BINARY,
  agent: "hybrid-vsock",
  needsKvm: true,
  guestModules: PCI_MODULES,
  available(): Availability {
    return vmmAvailability(CH_BINARY, true, "see docs/vm-drivers.md");
  },
  render(plan: VmPlan, _o: RenderOptions): VmmLaunch {
    const v = hybridVsock(plan, "Cloud Hypervisor");
    return {
      vmm: "cloud-hypervisor",
      binary: CH_BINARY,
      args: chCommandLine(plan),
      wiring: { kind: "hybrid-vsock", uds: v.uds, port: v.port },
      // A guest powered off through ACPI ends the VMM; a reset would reboot it.
      guestStop: "poweroff",
      identity: plan.identity,
    };
  },
};

