import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { InvalidArgumentError } from "../../core/errors.js";
import type { CliTarget } from "../target.js";
import type { Action } from "./action.js";

/** `corral cp SRC DST`. */
export const cp: Action = async (ctx, p) => {
  const { src, dst } = p.args as { src: string; dst: string };
  await copy(await ctx.target(), src, dst);
};

/** `corral cp SRC SANDBOX:PATH` or `corral cp SANDBOX:PATH DST`: one regular file. */
export async function copy(target: CliTarget, src: string, dst: string): Promise<void> {
  const from = sandboxPath(src);
  const to = sandboxPath(dst);
  if (to && !from) return upload(target, src, to);
  if (from && !to) return download(target, from, src, dst);
  throw new InvalidArgumentError("exactly one of SRC and DST must be SANDBOX:PATH");
}

async function upload(target: CliTarget, src: string, to: { ref: string; path: string }): Promise<void> {
  const st = fs.statSync(src);
  if (!st.isFile()) throw new InvalidArgumentError(`${src} is not a regular file (copying directories is not supported yet)`);
  const files = await target.files(to.ref);
  try {
    let dest = to.path;
    if (dest.endsWith("/") || (await files.stat(dest).then((x) => x.type === "dir", () => false))) {
      dest = path.posix.join(dest, path.basename(src));
    }
    await files.write(dest, fs.createReadStream(src), st.mode & 0o777);
  } finally {
    files.close();
  }
}

async function download(target: CliTarget, from: { ref: string; path: string }, src: string, dst: string): Promise<void> {
  const files = await target.files(from.ref);
  try {
    let dest = dst;
    if (fs.statSync(dst, { throwIfNoEntry: false })?.isDirectory()) dest = path.join(dst, path.posix.basename(from.path));
    const st = await files.stat(from.path);
    if (st.type !== "file") throw new InvalidArgumentError(`${src} is a ${st.type}, not a file`);
    await pipeline(await files.read(from.path), fs.createWriteStream(dest, { mode: st.mode & 0o777 }));
  } finally {
    files.close();
  }
}

/** "box:/a/b" → { ref: "box", path: "/a/b" }; a host path (absolute, ./x, no colon) → undefined. */
function sandboxPath(arg: string): { ref: string; path: string } | undefined {
  if (arg.startsWith("/") || arg.startsWith(".")) return undefined;
  const i = arg.indexOf(":");
  if (i <= 0) return undefined;
  const p = arg.slice(i + 1);
  return { ref: arg.slice(0, i), path: p.startsWith("/") ? p : `/${p}` };
}
