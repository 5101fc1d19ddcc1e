import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { runCommand } from "../../host/command.js";
import { nativeBinary } from "../../host/native.js";
import type { Store } from "../../store/store.js";
import { withLock } from "../../store/lock.js";

const UID_COUNT = 65536;

/** `<store>/images/<hash of the layer list>.erofs`: one image per layer stack. */
export function imagePath(store: Store, layers: readonly string[]): string {
  const key = createHash("sha256").update(layers.join("\n")).digest("hex");
  return path.join(store.dir, "images", `${key}.erofs`);
}

/**
 * The read-only root image a VM boots from: the template's layers merged
 * into one erofs filesystem (mkfs.erofs), built once per layer stack and
 * shared by every VM on the host (each attaches it read-only).
 *
 * The layers are stored owned by the sandbox uid range; mkfs.erofs runs (via
 * corral-launch) in a user namespace mapping that range back to 0.., so the
 * image holds the template's own owners (root is 0 in the guest). Several
 * layers are merged by a read-only overlay mount (whiteouts and opaque dirs
 * resolved) that exists only in corral-launch's private mount namespace.
 */
export async function ensureTemplateImage(store: Store, layers: readonly string[]): Promise<string> {
  const file = imagePath(store, layers);
  if (fs.existsSync(file)) return file;
  const imagesDir = path.dirname(file);
  await fsp.mkdir(imagesDir, { recursive: true, mode: 0o711 });
  return withLock(`${file}.lock`, async () => {
    if (fs.existsSync(file)) return file;
    // A dir the mapped root may write in; nothing else of the host is writable to it.
    const work = path.join(imagesDir, `.build-${randomBytes(6).toString("hex")}`);
    await fsp.mkdir(work, { mode: 0o700 });
    await fsp.chown(work, store.uidBase, store.uidBase);
    try {
      const out = path.join(work, "image.erofs");
      const dirs = layers.map((d) => store.layerDir(d));
      const args: string[] = [];
      let source = dirs[0]!;
      if (dirs.length > 1) {
        source = path.join(work, "merged");
        await fsp.mkdir(source);
        // overlayfs lists the top layer first.
        args.push("--ro-overlay", [...dirs].reverse().join(":"), source);
      }
      args.push("--userns", String(store.uidBase), String(UID_COUNT), "--", "mkfs.erofs", "-T0", "--quiet", out, source);
      await runCommand(nativeBinary("corral-launch"), args);
      await fsp.chown(out, 0, 0);
      await fsp.chmod(out, 0o644);
      await fsp.rename(out, file);
      return file;
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  });
}

/**
 * Removes template images no live layer stack names (a template's, or one
 * a sandbox stands on), and build dirs a crash left, once older than
 * `graceMs`. Returns the removed image paths and the bytes they held.
 */
export async function gcImages(store: Store, live: readonly (readonly string[])[], graceMs: number): Promise<{ removed: string[]; freedBytes: number }> {
  const dir = path.join(store.dir, "images");
  const keep = new Set(live.map((layers) => path.basename(imagePath(store, layers))));
  const removed: string[] = [];
  let freedBytes = 0;
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    const isImage = /^[0-9a-f]{64}\.erofs$/.test(name);
    if (!(isImage && !keep.has(name)) && !name.startsWith(".build-")) continue;
    const p = path.join(dir, name);
    const st = await fsp.stat(p).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < graceMs) continue;
    if (isImage && fs.existsSync(`${p}.lock`)) continue; // being rebuilt right now
    freedBytes += st.isFile() ? st.blocks * 512 : 0;
    await fsp.rm(p, { recursive: true, force: true });
    if (isImage) removed.push(p);
  }
  return { removed, freedBytes };
}
