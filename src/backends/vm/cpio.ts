import { gzipSync } from "node:zlib";

/** One entry of an initramfs. Owners are always root; mtimes 0 (reproducible). */
export type CpioEntry =
  | { readonly path: string; readonly type: "dir"; readonly mode?: number }
  | { readonly path: string; readonly type: "file"; readonly mode?: number; readonly data: Buffer }
  | { readonly path: string; readonly type: "symlink"; readonly target: string }
  | { readonly path: string; readonly type: "chardev"; readonly mode?: number; readonly major: number; readonly minor: number };

const TYPE_BITS = { dir: 0o040000, file: 0o100000, symlink: 0o120000, chardev: 0o020000 } as const;
const DEFAULT_MODE = { dir: 0o755, file: 0o644, symlink: 0o777, chardev: 0o600 } as const;

const hex = (n: number) => n.toString(16).padStart(8, "0");
const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);

function header(ino: number, mode: number, size: number, nameLen: number, rmaj = 0, rmin = 0): Buffer {
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, rmaj, rmin, nameLen, 0];
  return Buffer.from(`070701${fields.map(hex).join("")}`, "ascii");
}

/**
 * A gzip'd "newc" cpio archive, the format the kernel unpacks as an
 * initramfs. Written here rather than by cpio(1) so the image is the same
 * bytes for the same inputs (it is cached by hash) and needs no host tool.
 */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (name: string, mode: number, data: Buffer, rmaj = 0, rmin = 0) => {
    const n = Buffer.from(`${name}\0`, "utf8");
    const h = header(ino++, mode, data.length, n.length, rmaj, rmin);
    parts.push(h, n, pad4(h.length + n.length), data, pad4(data.length));
  };
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, "");
    if (!name || name.split("/").includes("..")) throw new RangeError(`bad initramfs path: ${e.path}`);
    switch (e.type) {
      case "dir":
        push(name, TYPE_BITS.dir | (e.mode ?? DEFAULT_MODE.dir), Buffer.alloc(0));
        break;
      case "file":
        push(name, TYPE_BITS.file | (e.mode ?? DEFAULT_MODE.file), e.data);
        break;
      case "symlink":
        push(name, TYPE_BITS.symlink | DEFAULT_MODE.symlink, Buffer.from(e.target, "utf8"));
        break;
      case "chardev":
        push(name, TYPE_BITS.chardev | (e.mode ?? DEFAULT_MODE.chardev), Buffer.alloc(0), e.major, e.minor);
        break;
    }
  }
  push("TRAILER!!!", 0, Buffer.alloc(0));
  return gzipSync(Buffer.concat(parts), { level: 6 });
}
