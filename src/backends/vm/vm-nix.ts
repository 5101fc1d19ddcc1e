import { CorralError } from "../../core/errors.js";
import type { NixStoreView, Store } from "../../store/store.js";
import { ensureClosureImage } from "../../store/nix/closure-image.js";
import type { VmDisk } from "./plan.js";

/** The serial of the closure image's disk (init.c mounts corral-nix at /nix/store). */
export const NIX_DISK_ID = "nix";

/** What a VM of a Nix template gets: its store's disk and how the guest finds it. */
export interface VmNixStore {
  readonly disk: VmDisk;
  readonly cmdline: "disk";
}

/**
 * The /nix/store of a VM: the template's closure as a read-only erofs
 * image on its own virtio-blk disk (closure-image.ts), mounted at
 * /nix/store by corral-init. Without this a VM of a Nix template would boot
 * with the layer's empty mount points and every program "not found".
 * A template that asks for the host's whole store is refused until a
 * share can serve it: never started with an empty store.
 */
export async function vmNixStore(store: Store, view: NixStoreView | undefined): Promise<VmNixStore | undefined> {
  if (!view) return undefined;
  if (view.hostStore) {
    throw new CorralError("template_unsupported", "this Nix template shares the host's whole /nix/store, which a VM cannot mount yet; build it without --share-host-store for VMs", 422);
  }
  return { disk: { id: NIX_DISK_ID, path: await ensureClosureImage(store, view.closure), readOnly: true }, cmdline: "disk" };
}
