import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash } from "node:crypto";
import { overlayXattrs } from "../host/overlay-marks.js";

/** Ids in a uid range (the store's, a sandbox's). */
const RANGE = 65536;

export interface TreeSummary {
  /** sha256 over every entry's path, type, mode, owner, content and overlayfs xattrs. */
  readonly digest: string;
  readonly bytes: number;
  readonly files: number;
}

/**
 * Makes a freshly built root filesystem ready to be a shared layer, in one
 * walk: shifts every owner by `uidBase` (so root in the sandbox's user
 * namespace owns what host root owned in the build; with `fromUidBase`, a
 * sandbox's own range moves onto the store's, id for id: a commit of its
 * writable layer) and computes the tree's content address.
 *
 * chown clears setuid/setgid bits (and file capabilities), so modes are
 * restored after it; file capabilities are not carried over. Other xattrs
 * are not hashed, except overlayfs's own (trusted.overlay.*, an opaque
 * directory): two layers that differ only by an opaque marker show
 * different contents when stacked, so they must not share a digest.
 */
export async function finalizeTree(root: string, uidBase: number, fromUidBase?: number): Promise<TreeSummary> {
  // A sandbox's range (its 65536 ids) maps onto the store's, id for id.
  const shift = (id: number) =>
    fromUidBase !== undefined && fromUidBase !== uidBase && id >= fromUidBase && id < fromUidBase + RANGE ? id - fromUidBase + uidBase : id < uidBase ? id + uidBase : id;
  const hash = createHash("sha256");
  const xattrs = await overlayXattrs(root);
  let bytes = 0;
  let files = 0;

  async function visit(abs: string, rel: string): Promise<void> {
    const st = await fsp.lstat(abs);
    const uid = shift(st.uid);
    const gid = shift(st.gid);
    if (uid !== st.uid || gid !== st.gid) {
      await fsp.lchown(abs, uid, gid);
      if (!st.isSymbolicLink() && st.mode & 0o6000) await fsp.chmod(abs, st.mode & 0o7777);
    }
    const mode = st.mode & 0o7777;
    files++;
    if (st.isDirectory()) {
      hash.update(`d ${rel} ${mode.toString(8)} ${uid} ${gid}\n`);
      const names = (await fsp.readdir(abs)).sort();
      for (const n of names) await visit(path.join(abs, n), rel === "/" ? `/${n}` : `${rel}/${n}`);
    } else if (st.isSymbolicLink()) {
      hash.update(`l ${rel} ${uid} ${gid} ${await fsp.readlink(abs)}\n`);
    } else if (st.isFile()) {
      bytes += st.size;
      hash.update(`f ${rel} ${mode.toString(8)} ${uid} ${gid} ${st.size} ${await hashFile(abs)}\n`);
    } else {
      hash.update(`o ${rel} ${mode.toString(8)} ${uid} ${gid} ${st.mode & 0o170000} ${st.rdev}\n`);
    }
    for (const x of xattrs.get(rel) ?? []) hash.update(`x ${rel} ${x}\n`);
  }
  await visit(root, "/");
  return { digest: hash.digest("hex"), bytes, files };
}

function hashFile(p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    fs.createReadStream(p)
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });
}

/** Bytes used on disk by a tree (allocated blocks, not apparent size). */
export async function diskUsage(root: string): Promise<number> {
  let total = 0;
  async function visit(abs: string): Promise<void> {
    const st = await fsp.lstat(abs);
    total += st.blocks * 512;
    if (st.isDirectory()) for (const n of await fsp.readdir(abs)) await visit(path.join(abs, n));
  }
  await visit(root);
  return total;
}
