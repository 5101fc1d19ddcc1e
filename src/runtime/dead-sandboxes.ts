import type { RuntimeContext } from "./context.js";
import { recordEvent } from "./db.js";
import type { SandboxRecord } from "./records.js";

/**
 * Settles a sandbox whose row says running but whose host side is dead
 * (its init, its VM shim or its hypervisor gone): whatever is left of its
 * processes is ended (a VM's QEMU outlives a SIGKILLed shim, issue 18),
 * an ephemeral one is removed for good, a persistent one keeps its disk
 * and is marked stopped, so `start` runs it again.
 */
export async function settleDead(rt: RuntimeContext, r: SandboxRecord, status: string): Promise<"removed" | "stopped"> {
  if (r.spec.lifetime.mode === "ephemeral") {
    await rt.remove(r.id, r.tenant, `exited (${status})`, r.spec);
    return "removed";
  }
  rt.conns.drop(r.id);
  await rt.handle(r).stop();
  rt.space.record(rt.db, () => {
    rt.rows.setState(r.id, "stopped");
    recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "stopped", detail: { reason: `found ${status}` } });
  });
  return "stopped";
}

/**
 * One pass of the daemon's watch over running sandboxes: every row that
 * says running is checked against its host side (a container's init by
 * pid and start time, a VM's shim; about 0.05 ms each from /proc) and a
 * dead one settled. Sandboxes an operation of this process is working on
 * (rt.busy: a stop, a removal) are left to it.
 */
export async function watchPass(rt: RuntimeContext): Promise<{ id: string; outcome: "removed" | "stopped" }[]> {
  const settled: { id: string; outcome: "removed" | "stopped" }[] = [];
  for (const r of rt.rows.allRunning()) {
    if (rt.busy.has(r.id)) continue;
    const status = await rt.handle(r).status({ fresh: true });
    if (status === "running") continue;
    // Read again: an operation may have finished with it meanwhile.
    const now = rt.rows.allRunning().find((x) => x.id === r.id);
    if (!now || rt.busy.has(r.id)) continue;
    settled.push({ id: r.id, outcome: await rt.guard(r.id, () => settleDead(rt, now, status)) });
  }
  return settled;
}
