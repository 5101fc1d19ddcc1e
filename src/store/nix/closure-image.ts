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

/** Every path a store path, present in the host's store; a ConflictError naming the first that is not. */
async function checkPresent(storePaths: readonly string[]): Promise<void> {
  for (const p of storePaths) {
    if (!isStorePath(p)) throw new ConflictError(`the template's closure names ${JSON.stringify(p)}, not a path in /nix/store`);
    if (!(await fsp.lstat(p).then(() => true, () => false))) {
      throw new ConflictError(`${p} of the template's Nix closure is no longer in the host's store (rebuild the template with corral template build --nix)`);
    }
  }
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
  await checkPresent(c.storePaths);
  const imagesDir = path.dirname(file);
  await fsp.mkdir(imagesDir, { recursive: true, mode: 0o711 });
  return withLock(`${file}.lock`, async () => {
    if (fs.existsSync(file)) return file;
    const work = path.join(imagesDir, `.build-${randomBytes(6).toString("hex")}`);
    const stage = path.join(work, "store");
    await fsp.mkdir(work, { mode: 0o700 });
    try {
      await stageClosure(stage, c.storePaths);
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
 * Makes `dest` (which must not exist) a directory holding exactly the
 * closure's store paths: hard links to the host store's files (cp -al;
 * they are immutable, so nothing is copied), a copy when `dest` is on
 * another filesystem. Checks every path is there.
 */
async function stageClosure(dest: string, storePaths: readonly string[]): Promise<void> {
  await fsp.mkdir(dest, { mode: 0o755 });
  // Nix's closures have hundreds to a few thousand paths: well inside
  // one argument list (ARG_MAX 2 MiB).
  const linked = await runCommand("cp", ["-a", "-l", "--", ...storePaths, `${dest}/`], { allowFailure: true });
  if (linked.code !== 0) {
    if (!/Invalid cross-device link/.test(linked.stderr)) throw new Error(`cp -al of the closure failed: ${linked.stderr.trim().split("\n").slice(-2).join("; ")}`);
    await fsp.rm(dest, { recursive: true, force: true });
    await fsp.mkdir(dest, { mode: 0o755 });
    await runCommand("cp", ["-a", "--", ...storePaths, `${dest}/`]);
  }
  const names = new Set(storePaths.map(storeBaseName));
  const got = await fsp.readdir(dest);
  if (got.length !== names.size || got.some((n) => !names.has(n))) throw new Error(`the staged closure holds ${got.length} entries, not the ${names.size} store paths`);
}

/**
 * `<store>/nix-trees/<layer>/`: the closure as a directory (stageClosure),
 * kept: the lower layer of a container's writable /nix/store
 * (`nix: { writable: true }`), under an overlay whose upper is the
 * sandbox's own. Built once per closure, like the image.
 */
export async function ensureClosureTree(store: Store, c: ClosureSource): Promise<string> {
  const dir = path.join(store.dir, "nix-trees", c.layer);
  if (!/^[0-9a-f]{64}$/.test(c.layer)) throw new RangeError(`not a layer digest: ${c.layer}`);
  if (fs.existsSync(dir)) return dir;
  await checkPresent(c.storePaths);
  await fsp.mkdir(path.dirname(dir), { recursive: true, mode: 0o711 });
  return withLock(`${dir}.lock`, async () => {
    if (fs.existsSync(dir)) return dir;
    const tmp = `${dir}.build-${randomBytes(6).toString("hex")}`;
    try {
      await stageClosure(tmp, c.storePaths);
      await fsp.rename(tmp, dir);
      return dir;
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  });
}

/** Removes closure trees whose Nix layer no live stack holds (as gcClosureImages). */
export async function gcClosureTrees(store: Store, live: readonly (readonly string[])[], graceMs: number): Promise<string[]> {
  const dir = path.join(store.dir, "nix-trees");
  const keep = new Set(live.flat().map((d) => path.basename(d)));
  const removed: string[] = [];
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    const layer = /^([0-9a-f]{64})(\.build-[0-9a-f]{12})?$/.exec(name)?.[1];
    if (layer === undefined || (keep.has(layer) && !name.includes(".build-"))) continue;
    const p = path.join(dir, name);
    const st = await fsp.stat(p).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < graceMs || fs.existsSync(`${path.join(dir, layer)}.lock`)) continue;
    await fsp.rm(p, { recursive: true, force: true });
    removed.push(p);
  }
  return removed;
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
