import { AgentClient } from "../../agent/client.js";
import { InvalidArgumentError } from "../../core/errors.js";
import type { VmPlan } from "./plan.js";
import type { Availability } from "./vmm-host.js";

/**
 * A hypervisor that can run a VmPlan. Cloud Hypervisor and Firecracker
 * implement it here; each renders the same plan into its own API payloads.
 */
export interface VmmDriver {
  readonly name: string;
  /** The binary is on PATH and /dev/kvm is usable (not that a guest boots). */
  available(): Availability;
  /** Starts the VMM with its API socket in `dir`, boots the plan, waits for the agent. */
  launch(plan: VmPlan, dir: string, opts?: LaunchOptions): Promise<RunningVm>;
}

export interface LaunchOptions {
  /** How long the guest may take to boot to a listening agent (default 30 s). */
  readonly agentTimeoutMs?: number;
}

export interface RunningVm {
  readonly pid: number;
  /** The VMM's API socket. */
  readonly apiSocket: string;
  /** A new connection to the agent. */
  agent(timeoutMs?: number): Promise<AgentClient>;
  /** Asks the guest to power off, then kills the VMM after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** A VMM process whose guest's agent is reached over hybrid vsock (CH, FC); each says how it stops. */
export abstract class HybridVsockVm implements RunningVm {
  constructor(
    readonly pid: number,
    readonly apiSocket: string,
    private readonly uds: string,
    private readonly port: number,
  ) {}

  agent(timeoutMs = 5000): Promise<AgentClient> {
    return AgentClient.connectVsock(this.uds, this.port, timeoutMs);
  }

  abstract stop(graceMs?: number): Promise<void>;
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
