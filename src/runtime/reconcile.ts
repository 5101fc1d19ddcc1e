import fsp from "node:fs/promises";
import type { RuntimeContext } from "./context.js";
import { recordEvent } from "./db.js";
import { LEGACY_CGROUP_PARENT } from "./open-state-dir.js";
import { settleDead } from "./dead-sandboxes.js";

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
    const status = await rt.handle(r).status();
    if (status === "running") continue;
    if ((await settleDead(rt, r, status)) === "removed") removed.push(r.id);
  }
  // What is on the host is listed before the rows are read: a creator
  // inserts its row before it makes anything, so whatever a live creator
  // has made by now has a row we are about to see.
  const onHost = new Set<string>(await fsp.readdir(rt.sandboxesDir));
  for (const b of backends.values()) for (const id of (await b.hostIds?.()) ?? []) onHost.add(id);
  // A cgroup parent of its own (open-state-dir.ts cgroupParentOf): all
  // under it is this state dir's. Under the old shared `corral`, a cgroup
  // with no trace here (directory, runtime state) may be another state
  // dir's sandbox, so it is left alone (issue 18: opening one state dir
  // destroyed 20 of 20 of another's sandboxes).
  const cgroups = await host.cgroupChildren(cgroupParent);
  for (const id of cgroups) if (cgroupParent !== LEGACY_CGROUP_PARENT) onHost.add(id);
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
