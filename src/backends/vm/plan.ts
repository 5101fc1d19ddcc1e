import type { VmIdentity } from "./identity.js";
import type { VmShare } from "./vm-virtiofs.js";

/**
 * Everything a hypervisor needs to run one sandbox, worked out once from the
 * spec by the VM backend. Each driver (QEMU, Cloud Hypervisor, Firecracker)
 * turns the same plan into its own command line or API payloads, so the
 * three cannot drift apart in what they give the guest.
 */
export interface VmPlan {
  /** Sandbox id: the VM's name. */
  readonly name: string;
  /** Uncompressed or bzImage kernel (Debian's vmlinuz works for QEMU and CH). */
  readonly kernel: string;
  /** newc cpio (gzip) holding corral's guest init, the agent and the modules. */
  readonly initrd: string;
  /** Kernel command line, complete (console, init, corral.* options). */
  readonly cmdline: string;
  readonly vcpus: number;
  readonly memoryMiB: number;
  /** In guest order: the first is /dev/vda. */
  readonly disks: readonly VmDisk[];
  /** How the host reaches the agent. */
  readonly agent: VmAgentChannel;
  /** A tap device on the host, when the sandbox has a network. */
  readonly net?: { readonly tap: string; readonly mac: string };
  /** Host directories over virtiofs (QEMU only), each served by its own virtiofsd. */
  readonly shares?: readonly VmShare[];
  /** Where the guest's serial console goes (bounded by the driver). */
  readonly consoleLog: string;
  readonly identity: VmIdentity;
}

export interface VmDisk {
  /** Stable id ("root", "data"); Firecracker's drive_id. */
  readonly id: string;
  readonly path: string;
  readonly readOnly: boolean;
}

export type VmAgentChannel =
  /** virtio-serial port named `org.corral.agent`, host end a unix socket. */
  | { readonly kind: "virtio-serial"; readonly socket: string }
  /**
   * vsock. With `uds` set the hypervisor exposes it as a "hybrid vsock" unix
   * socket (Cloud Hypervisor, Firecracker): the host connects to `uds` and
   * writes `CONNECT <port>\n`. Without it the host uses AF_VSOCK to `cid`.
   */
  | { readonly kind: "vsock"; readonly cid: number; readonly port: number; readonly uds?: string };

/** The vsock port the agent listens on inside a guest. */
export const AGENT_VSOCK_PORT = 1024;
