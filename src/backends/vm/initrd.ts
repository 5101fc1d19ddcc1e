import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { nativeBinary } from "../../host/native.js";
import { HostError } from "../../spec/errors.js";
import { cpioNewc, type CpioEntry } from "./cpio.js";
import type { GuestKernel } from "./kernel.js";

/** Debian's busybox-static: the guest init's shell and mount tools. */
export const BUSYBOX = "/bin/busybox";
export const AGENT_PORT_NAME = "org.corral.agent";
/** What the init prints, then powers off, when booted with corral.probe=1 (accelerator probe, boot floor). */
export const PROBE_MARK = "corral-probe-ok";

/**
 * The guest's /init: PID 1 of the initramfs. It loads the modules, mounts
 * the template's erofs image (disk serial corral-root) read-only under an
 * overlay whose upper layer is a tmpfs or the VM's own ext4 disk (serial
 * corral-data), moves /proc,
 * /sys and /dev into it, copies the agent and busybox to /run/corral and
 * switch_roots to the agent as PID 1, talking on the virtio-serial port
 * named org.corral.agent (fd 3). Any failure prints `corral-init: ...` on
 * the console and powers off, which the host reports with the console tail.
 *
 * Kernel command line: corral.hostname=NAME corral.upper=tmpfs|disk
 * corral.size=BYTES (tmpfs upper size) corral.vsock=1 (load the vsock
 * modules: for hypervisors that reach the agent over vsock).
 */
export const GUEST_INIT = `#!/bin/busybox sh
# The applets it uses are symlinks in the image (INIT_APPLETS): no
# busybox --install at boot. Every fork costs under TCG, so files are read
# with read, not $(cat).
export PATH=/bin
fail() { echo "corral-init: $*" >/dev/console; sync; poweroff -f; }
mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev || fail "cannot mount proc/sys/dev"
read -r cmdline < /proc/cmdline
case " $cmdline " in *" corral.probe=1 "*) echo ${PROBE_MARK} >/dev/console; poweroff -f ;; esac
host=sandbox; upper=tmpfs; size=1073741824; vsock=0
for a in $cmdline; do
  case "$a" in
    corral.hostname=*) host="\${a#*=}" ;;
    corral.upper=*) upper="\${a#*=}" ;;
    corral.size=*) size="\${a#*=}" ;;
    corral.vsock=1) vsock=1 ;;
  esac
done
while read -r m; do
  case "$m" in vsock|vmw_vsock_*) [ "$vsock" = 1 ] || continue ;; esac
  insmod "/lib/modules/$m.ko" || fail "insmod $m"
done < /modules
echo "$host" > /proc/sys/kernel/hostname
# Disks are found by serial (corral-<id>): virtio-mmio probe order is not the command line's.
disk() {
  found=; i=0
  while [ $i -lt 300 ]; do
    for b in /sys/block/vd*; do
      [ -e "$b/serial" ] || continue
      read -r serial < "$b/serial"
      [ "$serial" = "corral-$1" ] && { found="/dev/\${b##*/}"; return 0; }
    done
    sleep 0.01; i=$((i+1))
  done
  return 1
}
mkdir -p /lower /rw /newroot
disk root || fail "no template image disk (serial corral-root)"
mount -t erofs -o ro "$found" /lower || fail "cannot mount the template image $found"
if [ "$upper" = disk ]; then
  disk data || fail "no sandbox disk (serial corral-data)"
  mount -t ext4 -o noatime "$found" /rw || fail "cannot mount the sandbox disk $found"
else
  mount -t tmpfs -o "size=$size,mode=0755" upper /rw || fail "cannot mount the tmpfs upper layer"
fi
port=
for p in /sys/class/virtio-ports/*; do
  read -r name < "$p/name" && [ "$name" = ${AGENT_PORT_NAME} ] && port="\${p##*/}"
done
[ -n "$port" ] || fail "no virtio-serial port ${AGENT_PORT_NAME}"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "cannot mount the overlay root"
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp
mount --move /proc /newroot/proc && mount --move /sys /newroot/sys && mount --move /dev /newroot/dev || fail "cannot move proc/sys/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev run /newroot/run
mkdir -p /newroot/run/corral /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /newroot/dev/shm
cp /corral/agent /bin/busybox /newroot/run/corral/ || fail "cannot copy the agent"
exec 3<>"/newroot/dev/$port" || fail "cannot open /dev/$port"
echo "corral-init: agent on /dev/$port" >/dev/console
exec /bin/busybox switch_root /newroot /run/corral/agent --fd 3
`;

/** Busybox applets GUEST_INIT runs, linked in /bin of the initramfs. */
export const INIT_APPLETS = ["sh", "mount", "insmod", "mkdir", "sleep", "cp", "sync", "poweroff", "switch_root"] as const;

export interface GuestInitrd {
  readonly path: string;
  readonly sha256: string;
}

/**
 * Builds (once per content) the initramfs: busybox, the static agent, the
 * kernel's guest modules and the init script. Named by its hash under
 * `<vmDir>/initrd-<hash>.img`, so a new agent or kernel makes a new one.
 */
export function ensureInitrd(vmDir: string, kernel: GuestKernel): Promise<GuestInitrd> {
  const agent = nativeBinary("corral-agent");
  const key = `${vmDir}\0${kernel.version}\0${fs.statSync(agent).mtimeMs}`;
  let r = initrds.get(key);
  if (!r) {
    r = buildInitrd(vmDir, kernel);
    initrds.set(key, r);
    r.catch(() => initrds.delete(key));
  }
  return r;
}

const initrds = new Map<string, Promise<GuestInitrd>>();

async function buildInitrd(vmDir: string, kernel: GuestKernel): Promise<GuestInitrd> {
  if (!fs.existsSync(BUSYBOX)) throw new HostError(`${BUSYBOX} is missing: install busybox-static (scripts/setup.sh)`);
  const entries: CpioEntry[] = [
    ...["bin", "corral", "dev", "proc", "sys", "lib", "lib/modules"].map((p): CpioEntry => ({ path: p, type: "dir" })),
    { path: "dev/console", type: "chardev", major: 5, minor: 1 },
    { path: "dev/null", type: "chardev", mode: 0o666, major: 1, minor: 3 },
    { path: "init", type: "file", mode: 0o755, data: Buffer.from(GUEST_INIT) },
    { path: "bin/busybox", type: "file", mode: 0o755, data: await fsp.readFile(BUSYBOX) },
    ...INIT_APPLETS.map((a): CpioEntry => ({ path: `bin/${a}`, type: "symlink", target: "busybox" })),
    { path: "corral/agent", type: "file", mode: 0o755, data: await fsp.readFile(nativeBinary("corral-agent")) },
    { path: "modules", type: "file", data: Buffer.from(kernel.modules.map((m) => path.basename(m, ".ko")).join("\n") + "\n") },
  ];
  for (const m of kernel.modules) entries.push({ path: `lib/modules/${path.basename(m)}`, type: "file", data: unsigned(await fsp.readFile(m)) });
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
