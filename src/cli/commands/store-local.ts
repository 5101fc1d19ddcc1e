import type { Sandboxes } from "../../runtime/sandboxes.js";
import type { StoreSide } from "./store.js";

/** The store commands on the state dir, through the runtime. */
export function local(s: Sandboxes): StoreSide {
  return { usage: () => s.diskUsage(), gc: () => s.gc() };
}
