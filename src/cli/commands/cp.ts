import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { InvalidArgumentError } from "../../core/errors.js";
import type { CliTarget, SandboxFiles } from "../target.js";
import type { Action } from "./action.js";
import { downloadTree, uploadTree } from "./cp-tree.js";

/** `corral cp [-r] SRC DST`. */
export const cp: Action = async (ctx, p) => {
  const { src, dst } = p.args as { src: string; dst: string };
  await copy(await ctx.target(), src, dst, p.opts["recursive"] === true);
};

/** A path in a sandbox, from "box:/a/b". */
export interface SandboxPath {
  ref: string;
  path: string;
}

/**
 * `corral cp SRC SANDBOX:PATH` or `corral cp SANDBOX:PATH DST`: a regular
 * file through the files API; with `recursive`, a directory as a tar
 * stream (cp-tree.ts), as `docker cp` copies one.
 */
export async function copy(target: CliTarget, src: string, dst: string, recursive = false): Promise<void> {
  const from = sandboxPath(src);
  const to = sandboxPath(dst);
  if (to && !from) return withFiles(target, to.ref, (files) => upload(files, src, to, recursive));
  if (from && !to) return withFiles(target, from.ref, (files) => download(files, from, src, dst, recursive));
  throw new InvalidArgumentError("exactly one of SRC and DST must be SANDBOX:PATH");
}

async function withFiles(target: CliTarget, ref: string, fn: (files: SandboxFiles) => Promise<void>): Promise<void> {
  const files = await target.files(ref);
  try {
    await fn(files);
  } finally {
    files.close();
  }
}

async function upload(files: SandboxFiles, src: string, to: SandboxPath, recursive: boolean): Promise<void> {
  const st = fs.statSync(src, { throwIfNoEntry: false });
  if (!st) throw new InvalidArgumentError(`${src}: no such file or directory`);
  if (st.isDirectory()) {
    if (!recursive) throw new InvalidArgumentError(`${src} is a directory (cp -r copies directories)`);
    return uploadTree(files, src, to);
  }
  if (!st.isFile()) throw new InvalidArgumentError(`${src} is not a regular file or a directory`);
  let dest = to.path;
  if (dest.endsWith("/") || (await files.stat(dest).then((x) => x.type === "dir", () => false))) {
    dest = path.posix.join(dest, path.basename(src));
  }
  await files.write(dest, fs.createReadStream(src), st.mode & 0o777);
}

async function download(files: SandboxFiles, from: SandboxPath, src: string, dst: string, recursive: boolean): Promise<void> {
  const st = await files.stat(from.path);
  if (st.type === "dir") {
    if (!recursive) throw new InvalidArgumentError(`${src} is a directory (cp -r copies directories)`);
    return downloadTree(files, from, dst);
  }
  if (st.type !== "file") throw new InvalidArgumentError(`${src} is a ${st.type}, not a file`);
  let dest = dst;
  if (fs.statSync(dst, { throwIfNoEntry: false })?.isDirectory()) dest = path.join(dst, path.posix.basename(from.path));
  await pipeline(await files.read(from.path), fs.createWriteStream(dest, { mode: st.mode & 0o777 }));
}

/** "box:/a/b" → { ref: "box", path: "/a/b" }; a host path (absolute, ./x, no colon) → undefined. */
function sandboxPath(arg: string): SandboxPath | undefined {
  if (arg.startsWith("/") || arg.startsWith(".")) return undefined;
  const i = arg.indexOf(":");
  if (i <= 0) return undefined;
  const p = arg.slice(i + 1);
  return { ref: arg.slice(0, i), path: p.startsWith("/") ? p : `/${p}` };
}
