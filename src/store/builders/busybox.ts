import fsp from "node:fs/promises";
import path from "node:path";
import { runCommand } from "../../host/command.js";
import { HostError } from "../../core/errors.js";
import type { TemplateBuilder } from "./builder.js";
import { ensureSkeleton } from "./skeleton.js";

const BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"];

/** A tiny root: Debian's static busybox and its applet links. */
export const busyboxBuilder: TemplateBuilder = {
  name: "busybox",
  description: "static busybox (Debian busybox-static), a few hundred KiB, for fast tests",
  async build(dir, progress) {
    progress({ phase: "copy", message: "copying busybox", percent: 10 });
    const bin = await findStaticBusybox();
    await fsp.mkdir(path.join(dir, "bin"), { recursive: true });
    await fsp.copyFile(bin, path.join(dir, "bin/busybox"));
    await fsp.chmod(path.join(dir, "bin/busybox"), 0o755);
    const { stdout } = await runCommand(bin, ["--list-full"]);
    for (const applet of stdout.split("\n").filter(Boolean)) {
      if (applet === "bin/busybox" || applet.includes("..")) continue;
      const target = path.join(dir, applet);
      await fsp.mkdir(path.dirname(target), { recursive: true });
      const rel = path.relative(path.dirname(target), path.join(dir, "bin/busybox"));
      await fsp.symlink(rel, target).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "EEXIST") throw e;
      });
    }
    await ensureSkeleton(dir);
    const version = (await runCommand(bin, ["--help"], { allowFailure: true })).stdout.split("\n")[0] ?? "busybox";
    return { source: `busybox:${version.trim()}` };
  },
};

async function findStaticBusybox(): Promise<string> {
  for (const c of BUSYBOX_CANDIDATES) {
    const buf = await fsp.readFile(c).catch(() => undefined);
    if (buf && isStaticElf(buf)) return c;
  }
  throw new HostError("a static busybox is needed for the busybox template: apt-get install busybox-static");
}

/** An ELF64 executable with no PT_INTERP program header needs no loader or libc. */
export function isStaticElf(buf: Buffer): boolean {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) return false;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > buf.length) return false;
    if (buf.readUInt32LE(off) === 3) return false; // PT_INTERP
  }
  return true;
}
