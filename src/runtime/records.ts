import type { ExecResult } from "../agent/client.js";
import type { SandboxIdentity, SandboxStatus } from "../backends/backend.js";
import type { ResolvedSpec } from "../core/sandbox-spec.js";

/** The tenant of sandboxes made without one (the local CLI). */
export const LOCAL_TENANT = "local";

/** Whose sandboxes a call may see: one tenant's, or (tenant unset) all. */
export interface Scope {
  readonly tenant?: string | undefined;
}

export interface SandboxRecord {
  readonly id: string;
  readonly tenant: string;
  readonly name: string;
  readonly spec: ResolvedSpec;
  readonly createdAt: string;
  /** When the sandbox is removed; null: never (persistent). */
  readonly expiresAt: string | null;
  readonly state: "creating" | "running" | "stopped";
  /** Pid of the process creating it, to tell a crash from work in progress. */
  readonly creatorPid: number;
}

export interface SandboxInfo extends SandboxRecord {
  readonly status: SandboxStatus;
  /** Its network and vsock names (MAC, vsock CID, tap), where its backend gives it some (VMs). */
  readonly identity?: SandboxIdentity;
  /** Made (and kept) by the operator's declared state (runtime/declared.ts), not through the API. */
  readonly declared?: true;
}

/** A saved microVM: what a restore starts from. */
export interface SnapshotInfo {
  readonly name: string;
  readonly tenant: string;
  /** The spec restored sandboxes get (name aside). */
  readonly spec: ResolvedSpec;
  /** Name of the sandbox it was taken from. */
  readonly source: string;
  /** Memory image plus disk image, on the host. */
  readonly bytes: number;
  readonly createdAt: string;
}

export interface ExecOutcome extends ExecResult {
  /** The kernel's OOM killer ended the command (memory limit). */
  readonly oomKilled: boolean;
}

/** The name (and hostname) of a sandbox created without one. */
export const defaultName = (id: string) => `sb-${id.slice(0, 8)}`;

/** When a sandbox given `seconds` (none: never) at `from` is removed: the one place expiry is computed. */
export function expiryFrom(from: Date | number, seconds: number | null | undefined): string | null {
  if (seconds === null || seconds === undefined) return null;
  return new Date(new Date(from).getTime() + seconds * 1000).toISOString();
}
