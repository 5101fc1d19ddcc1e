import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { nativeBinary } from "../../host/native.js";
import { HostError } from "../../core/errors.js";
import { cpioNewc, type CpioEntry } from "./cpio.js";
import { ensureExtraModules, type GuestKernel } from "./kernel.js";

/** Debian's busybox-static: copied to the guest's /run/corral (a shell for the shim's poweroff, images without one). */
export const BUSYBOX = "/bin/busybox";
export const AGENT_PORT_NAME = "org.corral.agent";
/** What the init prints, then powers off, when booted with corral.probe=1 (accelerator probe, boot floor): init.c's PROBE_MARK. */
export const PROBE_MARK = "corral-probe-ok";

export interface GuestInitrd {
  readonly path: string;
  readonly sha256: string;
}

/**
 * Builds (once per content) the initramfs: corral-init as /init
 * (native/init.c: it loads the modules listed in /modules, mounts the
 * template image under an overlay, copies the agent and busybox to
 * /run/corral and makes the overlay the root with the agent as PID 1; its
 * kernel command line is guestCmdline's), the static agent, busybox and the
 * kernel's guest modules, then `extraModules` (a VMM's own: kernel.ts
 * PCI_MODULES). Named by its hash under `<vmDir>/initrd-<hash>.img`, so a
 * new agent, init, kernel or module list makes a new one.
 */
export function ensureInitrd(vmDir: string, kernel: GuestKernel, extraModules: readonly string[] = []): Promise<GuestInitrd> {
  const key = [vmDir, kernel.version, ...extraModules, ...(["corral-agent", "corral-init"] as const).map((b) => fs.statSync(nativeBinary(b)).mtimeMs)].join("\0");
  let r = initrds.get(key);
  if (!r) {
    r = buildInitrd(vmDir, kernel, extraModules);
    initrds.set(key, r);
    r.catch(() => initrds.delete(key));
  }
  return r;
}

const initrds = new Map<string, Promise<GuestInitrd>>();

async function buildInitrd(vmDir: string, kernel: GuestKernel, extraModules: readonly string[]): Promise<GuestInitrd> {
  if (!fs.existsSync(BUSYBOX)) throw new HostError(`${BUSYBOX} is missing: install busybox-static (scripts/setup.sh)`);
  const modules = [...kernel.modules, ...(extraModules.length ? await ensureExtraModules(vmDir, kernel, extraModules) : [])];
  const entries: CpioEntry[] = [
    ...["bin", "corral", "dev", "proc", "sys", "lib", "lib/modules"].map((p): CpioEntry => ({ path: p, type: "dir" })),
    { path: "dev/console", type: "chardev", major: 5, minor: 1 },
    { path: "dev/null", type: "chardev", mode: 0o666, major: 1, minor: 3 },
    { path: "init", type: "file", mode: 0o755, data: await fsp.readFile(nativeBinary("corral-init")) },
    { path: "bin/busybox", type: "file", mode: 0o755, data: await fsp.readFile(BUSYBOX) },
    { path: "corral/agent", type: "file", mode: 0o755, data: await fsp.readFile(nativeBinary("corral-agent")) },
    { path: "modules", type: "file", data: Buffer.from(modules.map((m) => path.basename(m, ".ko")).join("\n") + "\n") },
  ];
  for (const m of modules) entries.push({ path: `lib/modules/${path.basename(m)}`, type: "file", data: unsigned(await fsp.readFile(m)) });
  const image = cpioNewc(entries);
  const sha256 = createHash("sha256").update(image).digest("hex");
  const file = path.join(vmDir, `initrd-${sha256.slice(0, 16)}.img`);
  if (!fs.existsSync(file)) {
    const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
    await fsp.writeFile(tmp, image, { mode: 0o644 });
    await fsp.rename(tmp, file);
  }
  return { path: file, sha256 };
}

const SIGNATURE_MARK = Buffer.from("~Module signature appended~\n");
/** struct module_signature: algo, hash, id_type, signer_len, key_id_len, pad[3], sig_len (big endian). */
const SIGNATURE_INFO = 12;

/**
 * A kernel module without its appended signature. Debian's kernel checks
 * the signature of every module it loads when there is one (it enforces
 * them only under Secure Boot, which a microVM has not): hashing ~1 MiB of
 * modules and an RSA check cost ~60 ms of a TCG boot. The host checked the
 * package they came from (apt) and builds this image itself; the guest
 * kernel marks itself tainted "E" (unsigned module loaded), nothing else.
 */
export function unsigned(ko: Buffer): Buffer {
  if (ko.length < SIGNATURE_MARK.length + SIGNATURE_INFO || !ko.subarray(ko.length - SIGNATURE_MARK.length).equals(SIGNATURE_MARK)) return ko;
  const sigLen = ko.readUInt32BE(ko.length - SIGNATURE_MARK.length - 4);
  const end = ko.length - SIGNATURE_MARK.length - SIGNATURE_INFO - sigLen;
  return end > 0 ? ko.subarray(0, end) : ko;
}
