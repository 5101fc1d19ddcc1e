import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { runCommand } from "../../host/command.js";
import { HostError } from "../../core/errors.js";
import { withLock } from "../../store/lock.js";

/** The Debian package whose kernel every guest boots. */
export const KERNEL_META_PACKAGE = "linux-image-cloud-amd64";
/** Where setup keeps the downloaded .deb so fresh state dirs need no network. */
export const DEB_CACHE = process.env["CORRAL_DEB_CACHE"] ?? "/var/cache/corral/debs";

/**
 * The modules a guest needs, in load order (dependencies first). Debian's
 * cloud kernel builds virtio, erofs, overlay and vsock as modules; the
 * .deb has no modules.dep, so the order is written down here and checked
 * against each module's own `depends=` when the kernel is unpacked.
 */
export const GUEST_MODULES = [
  "virtio_ring",
  "virtio",
  "virtio_mmio",
  "virtio_blk",
  "virtio_console",
  "virtio-rng",
  "libcrc32c",
  "erofs",
  "overlay",
  "vsock",
  "vmw_vsock_virtio_transport_common",
  "vmw_vsock_virtio_transport",
  // Loaded by corral-init only for a guest with a network (corral.net=).
  "failover",
  "net_failover",
  "virtio_net",
] as const;

export interface GuestKernel {
  /** Debian package version, e.g. 6.1.192-2: the cache key. */
  readonly version: string;
  /** Kernel release, e.g. 6.1.0-56-cloud-amd64. */
  readonly release: string;
  readonly vmlinuz: string;
  /**
   * The same kernel uncompressed (ELF, with its PVH entry note), when it
   * could be extracted: QEMU and Firecracker boot it directly, skipping the
   * bzImage decompressor and relocation (0.5-1 s under TCG).
   */
  readonly vmlinux?: string;
  /** GUEST_MODULES' files, in load order. */
  readonly modules: readonly string[];
}

/** The versioned package the meta package points at, and its version. */
async function resolvePackage(): Promise<{ name: string; version: string }> {
  const deps = await runCommand("apt-cache", ["depends", KERNEL_META_PACKAGE], { allowFailure: true });
  const name = /Depends: (linux-image-[^\s]+-cloud-amd64)\b/.exec(deps.stdout)?.[1];
  if (!name) throw new HostError(`apt-cache does not know ${KERNEL_META_PACKAGE}; run scripts/setup.sh (it runs apt-get update)`);
  const pol = await runCommand("apt-cache", ["policy", name]);
  const version = /Candidate: (\S+)/.exec(pol.stdout)?.[1];
  if (!version || version === "(none)") throw new HostError(`no candidate version of ${name}`);
  return { name, version };
}

/**
 * The kernel .deb: the newest one in the cache (no apt query on the hot
 * path: apt-cache takes seconds on a busy host), else the candidate
 * version downloaded now with `apt-get download`. scripts/setup.sh calls
 * this, so sandboxes never wait for the download.
 */
export async function kernelDeb(): Promise<{ deb: string; version: string }> {
  const cached = await newestCachedDeb();
  if (cached) return cached;
  return downloadKernelDeb();
}

const DEB_NAME = /^linux-image-[^_]+-cloud-amd64_([^_]+)_amd64\.deb$/;

async function newestCachedDeb(): Promise<{ deb: string; version: string } | undefined> {
  const names = (await fsp.readdir(DEB_CACHE).catch(() => [] as string[])).filter((n) => DEB_NAME.test(n));
  let best: { deb: string; version: string; mtime: number } | undefined;
  for (const n of names) {
    const deb = path.join(DEB_CACHE, n);
    const mtime = (await fsp.stat(deb)).mtimeMs;
    if (!best || mtime > best.mtime) best = { deb, version: DEB_NAME.exec(n)![1]!.replace(/%3a/g, ":"), mtime };
  }
  return best && { deb: best.deb, version: best.version };
}

/** Downloads the candidate kernel package into the cache. */
export async function downloadKernelDeb(): Promise<{ deb: string; version: string }> {
  const { name, version } = await resolvePackage();
  const deb = path.join(DEB_CACHE, `${name}_${version.replace(/:/g, "%3a")}_amd64.deb`);
  if (!fs.existsSync(deb)) {
    await fsp.mkdir(DEB_CACHE, { recursive: true });
    const tmp = path.join(DEB_CACHE, `.dl-${randomBytes(4).toString("hex")}`);
    await fsp.mkdir(tmp);
    try {
      await runCommand("apt-get", ["download", "-q", `${name}=${version}`], { cwd: tmp });
      const [got] = (await fsp.readdir(tmp)).filter((f) => f.endsWith(".deb"));
      if (!got) throw new HostError(`apt-get download ${name} wrote no .deb`);
      await fsp.rename(path.join(tmp, got), deb);
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }
  return { deb, version };
}

/**
 * Unpacks the guest kernel and its modules into `<vmDir>/kernel-<version>/`
 * once (dpkg-deb -x of Debian's cloud kernel; nothing else is downloaded).
 */
export async function ensureKernel(vmDir: string): Promise<GuestKernel> {
  let k = kernels.get(vmDir);
  if (!k) {
    k = unpackKernel(vmDir);
    kernels.set(vmDir, k);
    k.catch(() => kernels.delete(vmDir));
  }
  return k;
}

const kernels = new Map<string, Promise<GuestKernel>>();

async function unpackKernel(vmDir: string): Promise<GuestKernel> {
  const { deb, version } = await kernelDeb();
  const dir = path.join(vmDir, `kernel-${version}`);
  const manifest = path.join(dir, "kernel.json");
  const read = async () => JSON.parse(await fsp.readFile(manifest, "utf8")) as GuestKernel;
  if (fs.existsSync(manifest)) return read();
  await fsp.mkdir(vmDir, { recursive: true });
  return withLock(path.join(vmDir, "kernel.lock"), async () => {
    if (fs.existsSync(manifest)) return read();
    const tmp = path.join(vmDir, `.unpack-${randomBytes(4).toString("hex")}`);
    try {
      await runCommand("dpkg-deb", ["-x", deb, tmp]);
      const boot = path.join(tmp, "boot");
      const vmlinuzName = (await fsp.readdir(boot)).find((f) => f.startsWith("vmlinuz-"));
      if (!vmlinuzName) throw new HostError(`${deb} holds no vmlinuz`);
      const release = vmlinuzName.slice("vmlinuz-".length);
      const found = await findModules(path.join(tmp, "lib/modules", release));
      const stage = path.join(tmp, "corral");
      await fsp.mkdir(path.join(stage, "modules"), { recursive: true });
      await fsp.rename(path.join(boot, vmlinuzName), path.join(stage, "vmlinuz"));
      const modules: string[] = [];
      for (const m of GUEST_MODULES) {
        const src = found.get(m);
        if (!src) throw new HostError(`kernel ${release} has no module ${m}`);
        const dst = path.join(dir, "modules", `${m}.ko`);
        await fsp.rename(src, path.join(stage, "modules", `${m}.ko`));
        modules.push(dst);
      }
      checkOrder(await Promise.all(GUEST_MODULES.map(async (m) => [m, await moduleDepends(path.join(stage, "modules", `${m}.ko`))] as const)));
      const elf = await extractVmlinux(path.join(stage, "vmlinuz"), path.join(stage, "vmlinux"));
      const k: GuestKernel = { version, release, vmlinuz: path.join(dir, "vmlinuz"), ...(elf ? { vmlinux: path.join(dir, "vmlinux") } : {}), modules };
      await fsp.writeFile(path.join(stage, "kernel.json"), JSON.stringify(k, null, 2));
      await fsp.rename(stage, dir);
      return k;
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  });
}

/** The kernel a VM boots: the uncompressed ELF when there is one. */
export function bootImage(k: GuestKernel): string {
  return k.vmlinux ?? k.vmlinuz;
}

/** Compressed payloads a bzImage may carry, with the tool that unpacks each (what the kernel's extract-vmlinux does). */
const PAYLOADS: readonly [Buffer, string, string[]][] = [
  [Buffer.from([0x02, 0x21, 0x4c, 0x18]), "lz4", ["-dc"]],
  [Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), "zstd", ["-dcq"]],
  [Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), "xz", ["-dc"]],
  [Buffer.from([0x1f, 0x8b, 0x08]), "gzip", ["-dc"]],
];

/**
 * Writes the ELF vmlinux inside a bzImage to `out`: the first payload
 * whose tool turns it into an ELF image wins. Returns false (and writes
 * nothing) when none does, and the VM boots the bzImage.
 */
export async function extractVmlinux(bzImage: string, out: string): Promise<boolean> {
  const data = await fsp.readFile(bzImage);
  for (const [magic, tool, args] of PAYLOADS) {
    const at = data.indexOf(magic);
    if (at < 0) continue;
    const payload = `${out}.payload`;
    await fsp.writeFile(payload, data.subarray(at));
    try {
      // Trailing bytes after the payload make some tools complain; the ELF is whole by then.
      await runCommand("sh", ["-c", `${tool} ${args.join(" ")} < "$1" > "$2" 2>/dev/null; true`, "sh", payload, out]);
      const head = await fsp.readFile(out).then((b) => b.subarray(0, 4)).catch(() => Buffer.alloc(0));
      if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return true;
    } finally {
      await fsp.rm(payload, { force: true });
    }
    await fsp.rm(out, { force: true });
  }
  return false;
}

/**
 * Cloud Hypervisor's devices are virtio-pci, which Debian's cloud kernel
 * builds as modules; QEMU microvm and Firecracker have no PCI bus, so only
 * the initrd of a VMM that asks for them carries them (VmmDriver.guestModules),
 * loaded after GUEST_MODULES.
 */
export const PCI_MODULES = ["virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci"] as const;

/**
 * The files of modules beyond GUEST_MODULES (`names`, in load order),
 * unpacked beside them from the kernel's own .deb the first time a VM
 * needs them. Their order is checked against their `depends=` as
 * GUEST_MODULES' is.
 */
export async function ensureExtraModules(vmDir: string, kernel: GuestKernel, names: readonly string[]): Promise<string[]> {
  const dir = path.join(vmDir, `kernel-${kernel.version}`, "modules");
  const files = names.map((m) => path.join(dir, `${m}.ko`));
  const there = () => files.every((f) => fs.existsSync(f));
  if (there()) return files;
  return withLock(path.join(vmDir, "kernel.lock"), async () => {
    if (there()) return files;
    const deb = (await fsp.readdir(DEB_CACHE).catch(() => [] as string[])).find((n) => DEB_NAME.exec(n)?.[1]?.replace(/%3a/g, ":") === kernel.version);
    if (!deb) throw new HostError(`the .deb of guest kernel ${kernel.version} is no longer in ${DEB_CACHE}: run scripts/setup.sh`);
    const tmp = path.join(vmDir, `.unpack-${randomBytes(4).toString("hex")}`);
    try {
      await runCommand("dpkg-deb", ["-x", path.join(DEB_CACHE, deb), tmp]);
      const found = await findModules(path.join(tmp, "lib/modules", kernel.release), names);
      const all = [...GUEST_MODULES, ...names];
      checkOrder(await Promise.all(all.map(async (m) => [m, await moduleDepends(found.get(m) ?? path.join(dir, `${m}.ko`))] as const)));
      for (const [i, m] of names.entries()) {
        const src = found.get(m);
        if (!src) throw new HostError(`kernel ${kernel.release} has no module ${m}`);
        await fsp.copyFile(src, `${files[i]!}.tmp`);
        await fsp.rename(`${files[i]!}.tmp`, files[i]!);
      }
      return files;
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  });
}

async function findModules(root: string, names: readonly string[] = GUEST_MODULES): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const want = new Set<string>(names);
  async function walk(d: string): Promise<void> {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith(".ko") && want.has(e.name.slice(0, -3))) out.set(e.name.slice(0, -3), p);
    }
  }
  await walk(root);
  return out;
}

/** The `depends=` entry of a module's .modinfo section. */
export async function moduleDepends(file: string): Promise<string[]> {
  const text = (await fsp.readFile(file)).toString("latin1");
  const m = /\0depends=([^\0]*)\0/.exec(text);
  return m?.[1] ? m[1].split(",").filter(Boolean) : [];
}

/** Every module's dependencies load before it (built-ins are not listed in depends). */
export function checkOrder(deps: readonly (readonly [string, readonly string[]])[]): void {
  const seen = new Set<string>();
  for (const [m, ds] of deps) {
    for (const d of ds) {
      if (!seen.has(d) && !seen.has(d.replace(/_/g, "-")) && !seen.has(d.replace(/-/g, "_"))) {
        throw new HostError(`guest module ${m} needs ${d}, which is not loaded before it`);
      }
    }
    seen.add(m);
  }
}
