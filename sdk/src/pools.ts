import type { components } from "./api-types.js";
import { resolveConfig, type ConnectionOpts } from "./config.js";
import { Http } from "./http.js";

export type PoolInfo = components["schemas"]["Pool"];
export type PoolSpec = components["schemas"]["PoolRequest"];

/**
 * Warm pools: sandboxes of a template and resource shape started ahead of
 * need, so a create of that shape is a claim. Any key may list them;
 * setting and removing takes an admin tenant's key.
 */
export class Pools {
  static async list(opts: ConnectionOpts = {}): Promise<PoolInfo[]> {
    return (await new Http(resolveConfig(opts)).json("get", "/v1/pools", {})).pools;
  }

  /** Keeps `size` sandboxes of `template` (and `backend`, `resources`) ready; 0 empties the pool. */
  static async set(pool: PoolSpec, opts: ConnectionOpts = {}): Promise<PoolInfo> {
    return new Http(resolveConfig(opts)).json("put", "/v1/pools", { json: pool });
  }

  /** Empties a pool by its key (`PoolInfo.key`). */
  static async remove(key: string, opts: ConnectionOpts = {}): Promise<void> {
    await new Http(resolveConfig(opts)).json("delete", "/v1/pools/{key}", { path: { key } });
  }
}
