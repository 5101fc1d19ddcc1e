import fs from "node:fs";
import path from "node:path";
import { InvalidArgumentError } from "../../core/errors.js";
import { tarCreate, tarExtract } from "../host-tar.js";
import type { SandboxFiles } from "../target.js";
import type { SandboxPath } from "./cp.js";

/**
 * `corral cp -r`: a directory as a tar stream, with `docker cp`'s rule
 * for the destination: an existing directory gets SRC inside it (DST/name
 * of SRC), a missing one is made and gets SRC's contents; SRC ending in
 * "/." always gives its contents. The host's tar (host-tar.ts) makes or
 * reads the host's side; the sandbox's own tar the sandbox's
 * (agent/archive.ts).
 */
export async function uploadTree(files: SandboxFiles, src: string, to: SandboxPath): Promise<void> {
  const existing = await files.stat(to.path).catch(() => undefined);
  if (existing && existing.type !== "dir") throw new InvalidArgumentError(`cannot copy directory ${src} onto ${to.ref}:${to.path}: it is a ${existing.type}`);
  const full = path.resolve(src);
  // Into an existing directory: members named "SRC's name/..."; else SRC's contents ("./...") into the new one.
  const tar = existing && !contentsOnly(src) ? tarCreate(path.dirname(full), [path.basename(full)]) : tarCreate(full, ["."]);
  // Refused (a full disk, say): the pipe closes, and the host's tar ends on EPIPE rather than wait.
  const sent = files.uploadArchive(to.path, tar.stream).catch((e: unknown) => {
    tar.stream.destroy();
    throw e;
  });
  const [put, made] = await Promise.allSettled([sent, tar.done]);
  if (put.status === "rejected") throw put.reason;
  if (made.status === "rejected") throw made.reason;
}

export async function downloadTree(files: SandboxFiles, from: SandboxPath, dst: string): Promise<void> {
  const existing = fs.statSync(dst, { throwIfNoEntry: false });
  if (existing && !existing.isDirectory()) throw new InvalidArgumentError(`cannot copy directory ${from.ref}:${from.path} onto ${dst}: it is not a directory`);
  // The archive's members are "NAME/...": kept under an existing directory, stripped into a new one (or for "/.").
  const strip = existing && !contentsOnly(from.path) ? 0 : 1;
  if (!existing && !fs.statSync(path.dirname(path.resolve(dst)), { throwIfNoEntry: false })?.isDirectory()) {
    throw new InvalidArgumentError(`cannot make ${dst}: ${path.dirname(dst)} is not a directory`);
  }
  if (!existing) fs.mkdirSync(dst);
  await tarExtract(dst, await files.downloadArchive(from.path), strip);
}

/** "dir/." (docker cp): the directory's contents, not the directory. */
function contentsOnly(p: string): boolean {
  return p === "." || p.endsWith("/.");
}
