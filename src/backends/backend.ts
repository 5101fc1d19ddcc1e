import type { AgentClient } from "../agent/client.js";
import type { ResolvedSpec } from "../core/sandbox-spec.js";
import type { NixStoreView } from "../store/store.js";

export type BackendKind = "container" | "vm";

export interface BackendReport {
  readonly kind: BackendKind;
  readonly available: boolean;
  /** What is missing when not available, and notes on how it will run. */
  readonly notes: readonly string[];
}

export interface CreateRequest {
  readonly id: string;
  readonly spec: ResolvedSpec;
  readonly hostname: string;
  /** Template layer directories, bottom first. */
  readonly layers: readonly string[];
  /** The sandbox's own directory (exists, empty). */
  readonly dir: string;
  /** Host Nix store paths to mount read-only at /nix/store (Nix templates). */
  readonly nixStore?: NixStoreView | undefined;
  /** For a pool: the backend may start it from a snapshot of one of the same shape (VMs). */
  readonly warm?: boolean;
}

export interface UsageSample {
  readonly cpuNanos: number;
  readonly memoryBytes: number;
  readonly pids: number;
  readonly oomKills: number;
}

/** "crashed": it ended without being asked to (a guest kernel panic, QEMU killed). */
export type SandboxStatus = "running" | "stopped" | "crashed" | "missing";

export interface SandboxHandle {
  readonly id: string;
  /** The one channel for exec and files. Each call opens a new connection. */
  agent(timeoutMs?: number): Promise<AgentClient>;
  status(): Promise<SandboxStatus>;
  stats(): Promise<UsageSample>;
  /** Times the kernel's OOM killer has killed a process in the sandbox. */
  oomKills(): Promise<number>;
  /** Gives the running sandbox a new hostname (a claimed pooled sandbox takes its own name). */
  rename(hostname: string): Promise<void>;
  /** Ends its processes, keeping its directory (a persistent sandbox's disk). Idempotent. */
  stop(): Promise<void>;
  /** Idempotent; leaves no mount, cgroup, process or directory behind. */
  destroy(): Promise<void>;
}

export interface SandboxBackend {
  readonly kind: BackendKind;
  probe(): Promise<BackendReport>;
  create(req: CreateRequest): Promise<SandboxHandle>;
  /** Runs a stopped sandbox again from its directory. */
  start(req: CreateRequest): Promise<SandboxHandle>;
  /** A handle to a sandbox created earlier (by this or another process). */
  attach(id: string, dir: string): SandboxHandle;
}

/**
 * Makes a new sandbox with `make`, the same for every backend: whatever a
 * failed `make` left behind (processes, mounts, cgroup, files) is destroyed.
 */
export async function createOrUndo(handle: SandboxHandle, make: () => Promise<void>): Promise<SandboxHandle> {
  try {
    await make();
  } catch (e) {
    await handle.destroy().catch(() => {});
    throw e;
  }
  return handle;
}

/**
 * Runs a stopped sandbox again from its directory, the same for every
 * backend: nothing to do when it runs; otherwise whatever is left of it is
 * stopped, `launch` brings it up, and a failed launch leaves it stopped.
 */
export async function startAgain(handle: SandboxHandle, launch: () => Promise<void>): Promise<SandboxHandle> {
  if ((await handle.status()) === "running") return handle;
  await handle.stop();
  try {
    await launch();
  } catch (e) {
    await handle.stop().catch(() => {});
    throw e;
  }
  return handle;
}
