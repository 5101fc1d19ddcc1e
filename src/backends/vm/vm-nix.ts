import type { NixStoreView, Store } from "../../store/store.js";
import { ensureClosureImage } from "../../store/nix/closure-image.js";
import type { HostShare } from "../backend.js";
import type { VmDisk } from "./plan.js";
import type { VmHostShare } from "./vm-virtiofs.js";

/** The serial of the closure image's disk (init.c mounts corral-nix at /nix/store). */
export const NIX_DISK_ID = "nix";

/** The host's store, as a VM of a `--share-host-store` template sees it (virtiofs, read-only). */
export const HOST_STORE_SHARE: HostShare = { root: "/nix/store", path: ".", target: "/nix/store", readOnly: true };

/** What a VM of a Nix template gets: its store's disk or share, and how the guest finds it (`corral.nix=`). */
export type VmNixStore =
  | { readonly disk: VmDisk; readonly cmdline: "disk"; readonly writableInGuest: boolean }
  | { readonly share: VmHostShare; readonly cmdline: "share"; readonly writableInGuest: false };

/**
 * The /nix/store of a VM: the template's closure as a read-only erofs
 * image on its own virtio-blk disk (closure-image.ts), mounted at
 * /nix/store by corral-init; or, for a template built with
 * --share-host-store, the host's whole store as a read-only virtiofs
 * share. Without either a VM of a Nix template would boot with the layer's
 * empty mount points and every program "not found".
 */
export async function vmNixStore(store: Store, view: NixStoreView | undefined, disk: { persistent: boolean; diskBytes: number }): Promise<VmNixStore | undefined> {
  if (!view) return undefined;
  if (view.hostStore) {
    // Writable: the overlay is made on the host, in virtiofsd's namespace (vm-virtiofs.ts VmHostShare says why).
    const share: VmHostShare = view.writable ? { ...HOST_STORE_SHARE, readOnly: false, writableStore: disk } : HOST_STORE_SHARE;
    return { share, cmdline: "share", writableInGuest: false };
  }
  // Writable: the guest's overlay over the erofs image (corral.nixrw=1).
  return { disk: { id: NIX_DISK_ID, path: await ensureClosureImage(store, view.closure), readOnly: true }, cmdline: "disk", writableInGuest: view.writable === true };
}
