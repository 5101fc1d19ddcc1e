import fsp from "node:fs/promises";
import path from "node:path";
import { CorralError } from "../../core/errors.js";
import { nativeBinary } from "../../host/native.js";
import type { HostShare } from "../backend.js";
import { bindShareArgs, makeShareStages, shareStage } from "../share-stage.js";

/** Debian's QEMU ships the C virtiofsd here (qemu-system-common); $CORRAL_VIRTIOFSD names another (same options). */
export const VIRTIOFSD = process.env["CORRAL_VIRTIOFSD"] ?? "/usr/lib/qemu/virtiofsd";

/** Guest modules a VM with shares loads at boot, in dependency order (fuse, then virtiofs). */
export const VIRTIOFS_MODULES: readonly string[] = ["fuse", "virtiofs"];

/** The guest's ids map to the host as a container's do: 65536 from the sandbox uid base. */
const UID_COUNT = 65536;

/** A host process the shim starts before the VMM and ends after it (a share's virtiofsd). */
export interface VmHelper {
  /** Program and arguments. */
  readonly argv: readonly string[];
  /** The vhost-user socket it listens on: the VMM starts once it exists. */
  readonly socket: string;
}

/** One virtiofs share of a VM's plan. */
export interface VmShare {
  /** The virtiofs tag the guest mounts (at most 36 bytes). */
  readonly tag: string;
  readonly socket: string;
  readonly target: string;
  readonly readOnly: boolean;
  readonly daemon: VmHelper;
}

/** The directory of a VM's virtiofsd sockets, owned by the sandbox's root uid (virtiofsd runs as it). */
export function virtiofsSocketDir(dir: string): string {
  return path.join(dir, "fs");
}

/**
 * The VM's shares: one virtiofsd per share, each confined:
 *
 * - as the sandbox's own uid range, not root: corral-launch runs it in a
 *   user namespace mapping host ids [uidBase, uidBase+65536) to 0.. (as a
 *   container's), so what the guest's root writes is owned on the host as
 *   a container's root's writes are, and virtiofsd has no capability on
 *   the host: a guest that took it over (CVE-2020-35517, a virtiofsd
 *   escaping its share through a special file) is an unprivileged user
 *   with no write access outside the share;
 * - its share bound by fd below the allowed root (share-stage.ts), in
 *   corral-launch's private mount namespace, read-only when asked: so
 *   virtiofsd has nothing else of the host's file systems to serve;
 * - its own sandbox (`-o sandbox=namespace`, the default): new mount, pid
 *   and network namespaces, pivot_root into the share, a seccomp filter;
 * - a private /run: virtiofsd writes its pid file in /run/virtiofsd,
 *   which the unprivileged uid may not do on the host.
 *
 * It serves one VM: the shim starts it before QEMU and ends it after;
 * it lives in the VM's cgroup, so a destroy ends it whatever happened.
 */
/**
 * A share as the VM plans it: `writableStore` is the host's store under a
 * writable overlay made on the host, in virtiofsd's mount namespace (the
 * guest mounts it read-write at /nix/store). Not in the guest: the guest's
 * overlayfs opens its lower files with O_NOATIME (its root has
 * CAP_FOWNER), which virtiofsd, unprivileged, may not pass on for files of
 * the host's root: every exec failed with EPERM.
 */
export type VmHostShare = HostShare & { readonly writableStore?: { readonly persistent: boolean; readonly diskBytes: number } };

export async function planShares(dir: string, shares: readonly VmHostShare[], uidBase: number): Promise<VmShare[]> {
  if (!shares.length) return [];
  await makeShareStages(dir, shares);
  const sockets = virtiofsSocketDir(dir);
  await fsp.rm(sockets, { recursive: true, force: true });
  await fsp.mkdir(sockets, { mode: 0o700 });
  await fsp.chown(sockets, uidBase, uidBase);
  return shares.map((s, i) => {
    const socket = path.join(sockets, `${i}.sock`);
    const argv = [
      nativeBinary("corral-launch"),
      "--tmpfs", "/run", "1048576",
      "--owned-dir", "/run/virtiofsd", String(uidBase),
      ...(s.writableStore ? storeOverlayArgs(dir, s, i, uidBase, s.writableStore) : bindShareArgs(dir, s, i)),
      "--userns", String(uidBase), String(UID_COUNT),
      "--",
      VIRTIOFSD,
      `--socket-path=${socket}`,
      "-o", `source=${shareStage(dir, i)}`,
      "-o", "cache=auto",
      // Raising RLIMIT_NOFILE needs a host capability it has not: keep the shim's.
      "--rlimit-nofile=0",
    ];
    return { tag: `corral${i}`, socket, target: s.target, readOnly: s.readOnly, daemon: { argv, socket } };
  });
}

/**
 * The host's store (`s.root`/`s.path`) read-only under the sandbox's own
 * upper layer, mounted on the share's stage: the upper on the VM's
 * directory when persistent, else in a tmpfs of the disk's size that lives
 * as long as virtiofsd (the VM). Files the guest's root writes are owned
 * by the sandbox's uid range, as in a container's writable store.
 */
function storeOverlayArgs(dir: string, s: HostShare, i: number, uidBase: number, w: { persistent: boolean; diskBytes: number }): string[] {
  const base = path.join(dir, "nix-store-rw");
  return [
    ...(w.persistent ? ["--owned-dir", base, "0"] : ["--owned-dir", base, "0", "--tmpfs", base, String(Math.floor(w.diskBytes))]),
    "--owned-dir", path.join(base, "upper"), String(uidBase),
    "--owned-dir", path.join(base, "work"), String(uidBase),
    "--overlay", path.join(s.root, s.path), path.join(base, "upper"), path.join(base, "work"), shareStage(dir, i),
  ];
}

/** The guest's kernel command line words for its shares (init.c mounts each tag at its target). */
export function shareCmdline(shares: readonly VmShare[]): string[] {
  return shares.map((s) => `corral.share=${s.tag}:${s.readOnly ? "ro" : "rw"}:${s.target}`);
}

/**
 * QEMU's devices for the shares: vhost-user-fs needs the guest's RAM
 * shared with virtiofsd (a memfd backend, share=on; `memory-backend=` on
 * the machine) and one chardev and device per share.
 */
export function virtiofsQemuArgs(shares: readonly VmShare[], memoryMiB: number): { machine: string; args: string[] } {
  if (!shares.length) return { machine: "", args: [] };
  // libvhost-user (virtiofsd) refuses legacy virtio, which microvm's
  // virtio-mmio transport is by default: version 2 for all its devices.
  const args = ["-global", "virtio-mmio.force-legacy=false", "-object", `memory-backend-memfd,id=mem,size=${memoryMiB}M,share=on`];
  for (const [i, s] of shares.entries()) {
    args.push("-chardev", `socket,id=fs${i},path=${s.socket}`, "-device", `vhost-user-fs-device,chardev=fs${i},tag=${s.tag}`);
  }
  return { machine: ",memory-backend=mem", args };
}

/** Shares need QEMU (vhost-user-fs): another VMM is refused with a 422 before anything starts. */
export function checkSharesVmm(shares: readonly HostShare[], vmm: string): void {
  if (shares.length && vmm !== "qemu") {
    throw new CorralError("vmm_unsupported", `shares in a VM need vmm "qemu" (vhost-user-fs with virtiofsd); ${vmm} is not supported`, 422);
  }
}
