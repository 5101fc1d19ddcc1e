import type { components } from "./api-types.js";
import { resolveConfig, type ConnectionOpts } from "./config.js";
import { Http } from "./http.js";

export type StoreUsage = components["schemas"]["StoreUsage"];
export type GcResult = components["schemas"]["GcResult"];

/** The daemon's shared layer store (admin tenants' keys only). */
export class Store {
  /** Each layer once, with the templates naming it; each sandbox's private directory. */
  static async usage(opts: ConnectionOpts = {}): Promise<StoreUsage> {
    return new Http(resolveConfig(opts)).json("get", "/v1/store/usage", {});
  }

  /** Removes layers and VM images that nothing names or stands on. */
  static async gc(opts: ConnectionOpts = {}): Promise<GcResult> {
    return new Http(resolveConfig(opts)).json("post", "/v1/store/gc", {});
  }
}
