import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { runCommand } from "../../host/command.js";
import { ConflictError } from "../../core/errors.js";
import type { Store } from "../store.js";
import { withLock } from "../lock.js";
import { isStorePath, storeBaseName } from "./nix-paths.js";

/** What a closure image is made of: the Nix layer that names the closure, and the closure itself. */
export interface ClosureSource {
  /** Digest of the template's Nix layer (its /nix/store mount points and profile): the image's key. */
  readonly layer: string;
  /** Every store path of the closure, symlinks included. */
  readonly storePaths: readonly string[];
}

const IMAGE_NAME = /^nix-([0-9a-f]{64})\.erofs$/;

/**
 * `<store>/images/nix-<layer digest>.erofs`. The Nix layer holds one entry
 * per closure path and the profile's links to the outputs, so its digest
 * names the closure: two templates of one closure share the image, a
 * rebuild with other outputs gets another, and store gc keeps the image
 * exactly while some template or sandbox stands on that layer.
 */
export function closureImagePath(store: Store, layer: string): string {
  if (!/^[0-9a-f]{64}$/.test(layer)) throw new RangeError(`not a layer digest: ${layer}`);
  return path.join(store.dir, "images", `nix-${layer}.erofs`);
}

/**
 * The read-only image a VM mounts at /nix/store (microvm.nix's "store on
 * disk"): an erofs filesystem whose root holds exactly the closure's store
 * paths, owned by root as in a real store. Built once per closure and
 * attached read-only by every VM of it over virtio-blk.
 *
 * The paths are hard-linked into a staging tree (cp -al: the store's files
 * are immutable, so a link costs no copy; a copy when the state dir is on
 * another filesystem), and mkfs.erofs packs it. A closure path missing from
 * the host's store (collected by Nix's GC, a template from another host)
 * is refused with a ConflictError naming it, before any VM is started
 * without it.
 */
export async function ensureClosureImage(store: Store, c: ClosureSource): Promise<string> {
  const file = closureImagePath(store, c.layer);
  if (fs.existsSync(file)) return file;
  for (const p of c.storePaths) {
    if (!isStorePath(p)) throw new ConflictError(`the template's closure names ${JSON.stringify(p)}, not a path in /nix/store`);
    if (!(await fsp.lstat(p).then(() => true, () => false))) {
      throw new ConflictError(`${p} of the template's Nix closure is no longer in the host's store (rebuild the template with corral template build --nix)`);
    }
  }
  const imagesDir = path.dirname(file);
  await fsp.mkdir(imagesDir, { recursive: true, mode: 0o711 });
  return withLock(`${file}.lock`, async () => {
    if (fs.existsSync(file)) return file;
    const work = path.join(imagesDir, `.build-${randomBytes(6).toString("hex")}`);
    const stage = path.join(work, "store");
    await fsp.mkdir(stage, { recursive: true, mode: 0o700 });
    try {
      // Nix's closures have hundreds to a few thousand paths: well inside
      // one argument list (ARG_MAX 2 MiB).
      const linked = await runCommand("cp", ["-a", "-l", "--", ...c.storePaths, `${stage}/`], { allowFailure: true });
      if (linked.code !== 0) {
        if (!/Invalid cross-device link/.test(linked.stderr)) throw new Error(`cp -al of the closure failed: ${linked.stderr.trim().split("\n").slice(-2).join("; ")}`);
        await fsp.rm(stage, { recursive: true, force: true });
        await fsp.mkdir(stage, { mode: 0o700 });
        await runCommand("cp", ["-a", "--", ...c.storePaths, `${stage}/`]);
      }
      const names = new Set(c.storePaths.map(storeBaseName));
      const got = await fsp.readdir(stage);
      if (got.length !== names.size || got.some((n) => !names.has(n))) throw new Error(`the staged closure holds ${got.length} entries, not the ${names.size} store paths`);
      const out = path.join(work, "image.erofs");
      // -T0: no build time in the image; --all-root: the store is root's (the host's owners do not matter in the guest).
      await runCommand("mkfs.erofs", ["-T0", "--all-root", "--quiet", out, stage]);
      await fsp.chmod(out, 0o644);
      await fsp.rename(out, file);
      return file;
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  });
}

/**
 * Removes closure images whose Nix layer no live layer stack (a
 * template's, or one a sandbox stands on) holds, once older than `graceMs`.
 */
export async function gcClosureImages(store: Store, live: readonly (readonly string[])[], graceMs: number): Promise<{ removed: string[]; freedBytes: number }> {
  const dir = path.join(store.dir, "images");
  const keep = new Set(live.flat().map((d) => path.basename(d)));
  const removed: string[] = [];
  let freedBytes = 0;
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    const layer = IMAGE_NAME.exec(name)?.[1];
    if (layer === undefined || keep.has(layer)) continue;
    const p = path.join(dir, name);
    const st = await fsp.stat(p).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < graceMs || fs.existsSync(`${p}.lock`)) continue;
    freedBytes += st.blocks * 512;
    await fsp.rm(p, { force: true });
    removed.push(p);
  }
  return { removed, freedBytes };
}
