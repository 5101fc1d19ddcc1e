import path from "node:path";
import type { HostShare } from "../backends/backend.js";
import { InvalidSpecError } from "../core/errors.js";
import type { ResolvedSpec } from "../core/sandbox-spec.js";
import { ensureNixDbLayer } from "../store/nix/nix-db-layer.js";
import type { NixStoreView, TemplateRecord } from "../store/store.js";
import type { RuntimeContext } from "./context.js";

/** What a sandbox stands on: its layers (digests, bottom first), its /nix/store, its other shares. */
export interface SandboxStore {
  readonly layers: readonly string[];
  readonly nixStore: NixStoreView | undefined;
  readonly shares: readonly HostShare[];
}

/**
 * The layers, Nix store and shares of a sandbox of `spec` on `template`.
 * With `nix: { writable: true }` its /nix/store gets a private writable
 * layer over the read-only store it would have (the template's closure,
 * or the host's store shared at /nix/store, which then is the store, not a
 * share), and a layer with Nix's database holding that store's
 * registration (store/nix/nix-db-layer.ts) goes on top of the template's.
 * Without a store to write over it is refused, naming the field.
 */
export async function sandboxStore(rt: RuntimeContext, spec: ResolvedSpec, template: TemplateRecord, shares: readonly HostShare[]): Promise<SandboxStore> {
  const view = rt.store.nixStoreView(template);
  if (!spec.nix?.writable) return { layers: template.layers, nixStore: view, shares };
  if (view) {
    const db = await ensureNixDbLayer(rt.store, view.hostStore ? undefined : view.closure.storePaths);
    return { layers: [...template.layers, db], nixStore: { ...view, writable: true }, shares };
  }
  const hostStore = shares.find((s) => s.target === "/nix/store");
  if (!hostStore) {
    throw new InvalidSpecError([{ path: "nix.writable", message: "needs a store to write over: a Nix template (corral template build --nix), or the host's /nix/store shared at /nix/store" }]);
  }
  const db = await ensureNixDbLayer(rt.store, undefined);
  return {
    layers: [...template.layers, db],
    nixStore: { dir: path.join(hostStore.root, hostStore.path), paths: [], hostStore: true, closure: { layer: "", storePaths: [] }, writable: true },
    shares: shares.filter((s) => s !== hostStore),
  };
}
