import type { Sandboxes, SnapshotInfo } from "../../runtime/sandboxes.js";
import type { SnapshotRow, SnapshotSide } from "./snapshot.js";

const row = (x: SnapshotInfo): SnapshotRow => ({ name: x.name, source: x.source, template: x.spec.template, bytes: x.bytes, createdAt: x.createdAt });

/** The snapshot commands on the state dir, through the runtime: the local tenant's snapshots. */
export function local(s: Sandboxes): SnapshotSide {
  return {
    create: async (sandbox, name) => row(await s.snapshot(sandbox, name)),
    restore: async (snapshot, newName) => (await s.restoreSnapshot(snapshot, newName ? { name: newName } : {})).name,
    list: async () => s.listSnapshots().map(row),
    remove: (name) => s.deleteSnapshot(name),
  };
}
