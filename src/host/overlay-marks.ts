import path from "node:path";
import { runCommand } from "./command.js";

/**
 * overlayfs's own markers on a layer tree: a whiteout is a 0/0 character
 * device, an opaque directory carries the xattr trusted.overlay.opaque=y.
 *
 * Node has no mknod or xattr calls. mknod comes from coreutils; the xattrs
 * go through setfattr/getfattr from Debian's `attr` package (a few dozen
 * KiB, made for exactly this, one process for many paths) rather than a
 * python3 one-liner, which would tie the store to whichever python is first
 * on PATH. Paths are passed as arguments, never through a shell string.
 */
export const OPAQUE_XATTR = "trusted.overlay.opaque";

const BATCH = 500;

/** Creates a whiteout (character device 0/0) at each path. */
export async function makeWhiteouts(paths: readonly string[]): Promise<void> {
  for (let i = 0; i < paths.length; i += BATCH) {
    const script = 'for f do mknod -m 000 -- "$f" c 0 0 || exit 1; done';
    await runCommand("sh", ["-c", script, "sh", ...paths.slice(i, i + BATCH)]);
  }
}

/** Marks directories opaque (never following a symlink). */
export async function markOpaque(dirs: readonly string[]): Promise<void> {
  for (let i = 0; i < dirs.length; i += BATCH) {
    await runCommand("setfattr", ["-h", "-n", OPAQUE_XATTR, "-v", "y", "--", ...dirs.slice(i, i + BATCH)]);
  }
}

/**
 * Every trusted.overlay.* xattr in a tree, by path relative to `root`
 * ("/" for the root itself), as "name=0xHEX" strings in a stable order.
 */
export async function overlayXattrs(root: string): Promise<Map<string, string[]>> {
  const r = await runCommand("getfattr", ["-R", "-P", "-h", "--absolute-names", "-d", "-e", "hex", "-m", "^trusted\\.overlay\\.", "--", root], {
    allowFailure: true,
  });
  if (r.code !== 0) throw new Error(`getfattr on ${root} failed: ${r.stderr.trim().split("\n").slice(-3).join("; ")}`);
  const out = new Map<string, string[]>();
  let current: string | undefined;
  for (const line of r.stdout.split("\n")) {
    if (line.startsWith("# file: ")) {
      const abs = unquote(line.slice("# file: ".length));
      const rel = path.relative(root, abs);
      current = rel === "" ? "/" : `/${rel}`;
    } else if (current && line.includes("=")) {
      const list = out.get(current) ?? [];
      list.push(line);
      out.set(current, list.sort());
    }
  }
  return out;
}

/** getfattr escapes unusual bytes in names as \ooo and the backslash as \\. */
function unquote(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (s[i] === "\\" && s[i + 1] === "\\") {
      bytes.push(0x5c);
      i++;
    } else bytes.push(...Buffer.from(s[i]!, "utf8"));
  }
  return Buffer.from(bytes).toString("utf8");
}
