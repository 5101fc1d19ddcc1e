import path from "node:path";
import type { VmmLaunch } from "./vmm-driver.js";

/**
 * What the backend writes to `<dir>/vm.json` for the VM's shim (shim.ts):
 * the VMM process its driver rendered, and the shim's own settings.
 */
export interface ShimConfig extends VmmLaunch {
  readonly bootTimeoutMs: number;
  /** The VM's cgroup (relative), entered before the VMM starts so it holds all of it. */
  readonly cgroup?: string;
  /** CPU time the VMM may use, in cores, when the spec's vcpus is a fraction (the vCPU count is its ceiling). */
  readonly cpuShare?: number;
  /** The host memory the VM's cgroup (shim, VMM, virtiofsd) may use, bytes (vm-backend.ts VM_HOST_OVERHEAD). */
  readonly memoryLimit?: number;
  /**
   * This start only: a saved VM's state to resume from (QEMU's migration
   * stream in a file), opened by the shim and read by the VMM on fd 5
   * straight from the file (no `cat` process and pipe between them), with
   * `args` added to the VMM's own (`-incoming fd:5`).
   */
  readonly incoming?: { readonly file: string; readonly args: readonly string[] };
}

export interface ShimExit {
  /** A stop or destroy asked for it; otherwise the guest or the VMM died on its own. */
  readonly requested: boolean;
  readonly code: number | null;
  readonly signal: string | null;
  readonly at: string;
}

/** The files of a VM in its sandbox directory. */
export const shimPaths = (dir: string) => ({
  config: path.join(dir, "vm.json"),
  agentSocket: path.join(dir, "agent.sock"),
  /** QEMU's QMP socket (snapshots). */
  qmpSocket: path.join(dir, "qmp.sock"),
  /** Cloud Hypervisor's and Firecracker's hybrid vsock socket, which the shim bridges agent.sock to. */
  vsockSocket: path.join(dir, "vsock.sock"),
  console: path.join(dir, "console.log"),
  exit: path.join(dir, "exit.json"),
  log: path.join(dir, "shim.log"),
  shimPid: path.join(dir, "shim.pid"),
  vmmPid: path.join(dir, "vmm.pid"),
});

/** QEMU's fds from the shim: 3 the agent's port, 4 the console, 5 the saved state to restore. */
export const AGENT_FD = 3;
export const CONSOLE_FD = 4;
export const INCOMING_FD = 5;
