import type { AgentClient } from "../agent/client.js";
import type { ResolvedSpec } from "../core/sandbox-spec.js";
import type { NetAttachment } from "../network/networks.js";
import type { NixStoreView, Store } from "../store/store.js";

/**
 * The contract between the runtime and the ways a sandbox can be realised.
 * The runtime (lifecycle, database, pools, quotas) knows only this file:
 * it holds one backend per kind (backends/registry.ts) and never imports a
 * backend's own modules. What only some backends can do is optional.
 */
/** The spec's `backend`: a container (crun), a gVisor container (runsc) or a microVM. */
export type BackendKind = ResolvedSpec["backend"];

/** What the runtime gives every backend when it opens a state dir. */
export interface BackendContext {
  readonly stateDir: string;
  readonly store: Store;
  /**
   * The store's uid range (65536 ids from it): the owners of the shared
   * layers. Each sandbox is root at its own range above it
   * (CreateRequest.uidBase, runtime/uid-ranges.ts).
   */
  readonly uidBase: number;
  /** Parent cgroup of every sandbox of this state dir. */
  readonly cgroupParent: string;
  /** Store directory holding corral-agent (bind-mounted into containers, packed into VM initramfs). */
  readonly agentDir: string;
  /** A long-lived process (the daemon): may keep helpers started ahead of need. */
  readonly longLived: boolean;
}

/** Names a sandbox is known by on a network and a vsock bus, derived from its name (a VM's spec may fix the MAC and CID). */
export interface SandboxIdentity {
  readonly mac: string;
  readonly cid: number;
  readonly tap: string;
}

/** What a snapshot of a running sandbox cost on the host. */
export interface SnapshotSaved {
  /** Bytes of its files (memory image, device state, a persistent disk). */
  readonly bytes: number;
  readonly createdAt: string;
}

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
  /**
   * The host uid (and gid) that is root inside: the sandbox's own range of
   * 65536 (runtime/uid-ranges.ts). Unset: the state dir's shared `uidBase`
   * (sandboxes recorded before ranges existed).
   */
  readonly uidBase?: number | undefined;
  /** Host Nix store paths to mount read-only at /nix/store (Nix templates). */
  readonly nixStore?: NixStoreView | undefined;
  /** For a pool: the backend may start it from a snapshot of one of the same shape (VMs). */
  readonly warm?: boolean;
  /** Its place on corral's network (spec network "nat" or an object): a namespace to join, or a tap. */
  readonly net?: NetAttachment | undefined;
  /** Host directories the sandbox sees, resolved and allowed (runtime/shares.ts), parents before children. */
  readonly shares?: readonly HostShare[] | undefined;
}

/**
 * A share the runtime checked against the operator's allowed directories:
 * `path` below `root`, both free of symlinks when resolved. Backends open
 * them again by fd (corral-launch --bind-beneath), never by the joined
 * path, so a symlink swapped in since is refused, not followed.
 */
export interface HostShare {
  /** The allowed directory (a real path) it is below. */
  readonly root: string;
  /** Relative to root; "." for root itself. */
  readonly path: string;
  /** Where the sandbox sees it (absolute). */
  readonly target: string;
  readonly readOnly: boolean;
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
  /** `fresh`: not a recent answer a backend may keep (a claim, the daemon's watch). */
  status(opts?: { fresh?: boolean }): Promise<SandboxStatus>;
  stats(): Promise<UsageSample>;
  /** Times the kernel's OOM killer has killed a process in the sandbox. */
  oomKills(): Promise<number>;
  /** Gives the running sandbox a new hostname (a claimed pooled sandbox takes its own name). */
  rename(hostname: string): Promise<void>;
  /** Ends its processes, keeping its directory (a persistent sandbox's disk). Idempotent. */
  stop(): Promise<void>;
  /** Idempotent; leaves no mount, cgroup, process or directory behind. */
  destroy(): Promise<void>;
  /** The last `maxBytes` of what it printed outside any exec (a VM's serial console, a container's runtime log). */
  logs(maxBytes: number): Promise<string>;
  /** Whether its writable layer is kept on the host's disk (created persistent), so it survives a stop. */
  hasDisk(): boolean;
  /**
   * Copies a stopped sandbox's writable layer (an overlayfs upper dir, with
   * its whiteouts and opaque-directory xattrs) to `dest`, which must not
   * exist; `scratch` is an empty work path it may use and remove.
   */
  exportWritableLayer(dest: string, scratch: string): Promise<void>;
  /**
   * Saves the running sandbox (memory, devices, its disk if persistent) as
   * snapshot `snapshotId`; it runs on. Absent where the backend cannot.
   */
  snapshot?(snapshotId: string): Promise<SnapshotSaved>;
}

export interface SandboxBackend {
  readonly kind: BackendKind;
  /** Whether it can put a sandbox on corral's network (CreateRequest.net); absent: only network "none". */
  readonly networking?: boolean;
  probe(): Promise<BackendReport>;
  create(req: CreateRequest): Promise<SandboxHandle>;
  /** Runs a stopped sandbox again from its directory. */
  start(req: CreateRequest): Promise<SandboxHandle>;
  /** A handle to a sandbox created earlier (by this or another process). */
  attach(id: string, dir: string): SandboxHandle;
  /**
   * Applies a new spec to a stopped persistent sandbox, its disk kept, for
   * its next start (what create derived from the spec, e.g. a container's
   * config.json). Absent where start() derives everything itself (VMs).
   */
  reconfigure?(req: CreateRequest): Promise<void>;
  /** A new sandbox started from snapshot `snapshotId` (SandboxHandle.snapshot), with its own identity. */
  restore?(req: CreateRequest, snapshotId: string): Promise<SandboxHandle>;
  /** Whether snapshot `snapshotId` still has its files on this host. */
  hasSnapshot?(snapshotId: string): Promise<boolean>;
  /** Removes snapshot `snapshotId`'s files; idempotent. */
  removeSnapshot?(snapshotId: string): Promise<void>;
  /** The network and vsock names a sandbox of this name and spec gets. */
  identity?(name: string, spec: ResolvedSpec): SandboxIdentity;
  /**
   * Ids of sandboxes this backend has host state for outside their
   * directories (a runtime's own state dir), for reconcile to compare with
   * the database.
   */
  hostIds?(): Promise<string[]>;
  /** Removes host state of this backend that no sandbox can own (left by a killed helper), at open. */
  sweep?(): Promise<void>;
  /**
   * Removes what the backend derived from layer stacks none of `live` uses
   * any more (VM images, the snapshots made on them), older than `graceMs`.
   */
  gc?(live: readonly (readonly string[])[], graceMs: number): Promise<{ removed: string[]; freedBytes: number }>;
  /** Lets go of what this process holds (helpers started ahead of need); sandboxes keep running. */
  close?(): void;
}

/** Makes one backend for a state dir. */
export type BackendFactory = (ctx: BackendContext) => SandboxBackend;

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
