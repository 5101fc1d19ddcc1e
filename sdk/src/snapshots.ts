import type { components } from "./api-types.js";
import { resolveConfig, type ConnectionOpts } from "./config.js";
import { Http } from "./http.js";

/** A saved microVM (see `sandbox.snapshot`); restore it with `Sandbox.restore(name)`. */
export type SnapshotInfo = components["schemas"]["Snapshot"];

/** The tenant's snapshots. */
export class Snapshots {
  static async list(opts: ConnectionOpts = {}): Promise<SnapshotInfo[]> {
    return (await new Http(resolveConfig(opts)).json("get", "/v1/snapshots", {})).snapshots;
  }

  /** Deletes a snapshot and its files. */
  static async remove(name: string, opts: ConnectionOpts = {}): Promise<void> {
    await new Http(resolveConfig(opts)).json("delete", "/v1/snapshots/{name}", { path: { name } });
  }
}
