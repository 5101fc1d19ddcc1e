import fsp from "node:fs/promises";
import type { RuntimeContext } from "./context.js";
import { recordEvent } from "./db.js";

/** A sandbox id: what names its directory, cgroup and runtime state. */
const ID_PATTERN = /^[0-9a-f]{16}$/;

/** Removes every sandbox whose timeout has passed; returns their ids. */
export async function reapExpired(rt: RuntimeContext, now = Date.now()): Promise<string[]> {
  const rows = rt.rows.expired(now);
  for (const r of rows) await rt.remove(r.id, r.tenant, "timeout", r.spec);
  return rows.map((r) => r.id);
}

/**
 * Makes host and database agree after a crash, both ways: rows whose
 * creator died mid-create, sandbox directories, runtime state and cgroups
 * without a row are removed, and so are expired sandboxes.
 */
export async function reconcile(rt: RuntimeContext): Promise<{ removed: string[] }> {
  const removed: string[] = [];
  const { backends, host, cgroupParent } = rt.parts;
  await rt.store.reclaimTmp();
  for (const b of backends.values()) await b.sweep?.();
  for (const r of rt.rows.all()) {
    if (r.state === "creating" && !host.pidAlive(r.creatorPid)) {
      await rt.remove(r.id, r.tenant, "creator died mid-create", r.spec);
      removed.push(r.id);
    }
  }
  removed.push(...(await reapExpired(rt)));
  // An ephemeral sandbox whose init has died is gone for good; a
  // persistent one keeps its disk and is marked stopped.
  for (const r of rt.rows.allRunning()) {
    if ((await rt.handle(r).status()) === "running") continue;
    if (r.spec.lifetime.mode === "ephemeral") {
      await rt.remove(r.id, r.tenant, "exited", r.spec);
      removed.push(r.id);
    } else {
      await rt.handle(r).stop();
      rt.rows.setState(r.id, "stopped");
      recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "stopped", detail: { reason: "found dead on reconcile" } });
    }
  }
  // What is on the host is listed before the rows are read: a creator
  // inserts its row before it makes anything, so whatever a live creator
  // has made by now has a row we are about to see.
  const onHost = new Set<string>([...(await fsp.readdir(rt.sandboxesDir)), ...(await host.cgroupChildren(cgroupParent))]);
  for (const b of backends.values()) for (const id of (await b.hostIds?.()) ?? []) onHost.add(id);
  const known = rt.rows.ids();
  for (const id of onHost) {
    if (!ID_PATTERN.test(id) || known.has(id)) continue;
    await rt.destroyUnknown(id);
    recordEvent(rt.db, { sandbox: id, type: "destroyed", detail: { reason: "reconcile: no record" } });
    removed.push(id);
  }
  // Network slots of sandboxes that have no row (any more), and the
  // state dir's network itself once no slot is left.
  await rt.parts.net?.reconcile(rt.rows.ids());
  return { removed };
}
