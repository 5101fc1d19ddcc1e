import { Store } from "../../../sdk/src/index.js";
import type { Connection } from "../context.js";
import type { StoreSide } from "./store.js";

/** The store commands on a daemon, through the SDK (an admin tenant's key). */
export function remote(conn: Connection): StoreSide {
  // No timeout for gc: it removes as many layers and images as there are.
  return { usage: () => Store.usage(conn), gc: () => Store.gc({ ...conn, requestTimeoutMs: 0 }) };
}
