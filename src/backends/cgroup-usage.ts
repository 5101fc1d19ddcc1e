import type { SandboxCgroup } from "../host/host.js";
import type { UsageSample } from "./backend.js";

/** What a usage sample reads of a cgroup. */
export type CgroupCounters = Pick<SandboxCgroup, "cpuNanos" | "memoryBytes" | "pids" | "oomKills">;

/**
 * A sandbox's usage as its host cgroup counts it: CPU time, memory, OOM
 * kills and processes, or `pids` where another count is the truer one
 * (gVisor's: the cgroup counts its sentry's host threads). A container's
 * stats are this; a VM's start from it (the VMM's CPU and memory) and add
 * what its guest counts.
 */
export async function cgroupUsage(cg: CgroupCounters, pids: Promise<number> = cg.pids()): Promise<UsageSample> {
  const [cpuNanos, memoryBytes, processes, oomKills] = await Promise.all([cg.cpuNanos(), cg.memoryBytes(), pids, cg.oomKills()]);
  return { cpuNanos, memoryBytes, pids: processes, oomKills };
}
