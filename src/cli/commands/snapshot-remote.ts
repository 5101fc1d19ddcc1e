import { Sandbox, Snapshots } from "../../../sdk/src/index.js";
import type { Connection } from "../context.js";
import type { SnapshotSide } from "./snapshot.js";

/**
 * The snapshot commands on a daemon, through the SDK: the key's tenant's
 * snapshots. Saving and restoring a microVM take as long as its memory is
 * big (seconds under TCG), so those requests have no timeout.
 */
export function remote(conn: Connection): SnapshotSide {
  const long = { ...conn, requestTimeoutMs: 0 };
  return {
    async create(sandbox, name) {
      return (await Sandbox.connect(sandbox, long)).snapshot(name);
    },
    async restore(snapshot, newName) {
      const sb = await Sandbox.restore(snapshot, newName ? { ...long, name: newName } : long);
      return newName ?? (await sb.info()).name;
    },
    list: () => Snapshots.list(conn),
    remove: (name) => Snapshots.remove(name, conn),
  };
}
