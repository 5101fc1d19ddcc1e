import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { BackendError } from "../../core/errors.js";
import type { VmmName } from "../../core/sandbox-spec.js";
import type { SandboxHandle } from "../backend.js";
import type { VmmLaunch, VmmSnapshots } from "./vmm-driver.js";
import type { NetAttachment } from "../../network/networks.js";
import { hostsFile, resolvConf } from "../../network/guest-files.js";

/** The busybox corral-init binds into every guest (init.c), whatever the template has. */
const GUEST_BUSYBOX = "/run/corral/busybox";

/**
 * A saved VM on this host (`<dir>/snapshot.json` beside its `memory` and,
 * for a persistent VM, `disk.img`): a pool's snapshot of a VM shape under
 * `<state>/vm/snapshots/<shape>`, or a named one under `<state>/vm/saved/<id>`.
 */
export interface VmSnapshot {
  readonly dir: string;
  /** The VMM it was saved by; absent in snapshots made before there was a choice: QEMU. */
  readonly vmm?: VmmName;
  /** The VMM arguments of the VM it was taken from, portable (its directory and identity as marks: VmmSnapshots.portable). */
  readonly args: readonly string[];
  readonly createdAt: string;
  /** Bytes of the memory and device state file. */
  readonly bytes: number;
}

export async function readSnapshot(dir: string): Promise<VmSnapshot | undefined> {
  try {
    return JSON.parse(await fsp.readFile(path.join(dir, "snapshot.json"), "utf8")) as VmSnapshot;
  } catch {
    return undefined;
  }
}

/**
 * Saves the running VM in `vmDir` (started as `launch`) as the snapshot
 * `out` with its VMM's `snaps`: written beside `out` and renamed into
 * place once whole, so a reader sees a complete snapshot or none.
 */
export async function saveSnapshot(snaps: VmmSnapshots, vmDir: string, out: string, launch: VmmLaunch): Promise<VmSnapshot> {
  const tmp = `${out}.tmp-${randomBytes(4).toString("hex")}`;
  await fsp.mkdir(tmp, { recursive: true, mode: 0o700 });
  try {
    await snaps.save(vmDir, tmp, launch);
    const snap: VmSnapshot = {
      dir: out,
      vmm: launch.vmm,
      args: snaps.portable(launch, vmDir),
      createdAt: new Date().toISOString(),
      bytes: (await fsp.stat(path.join(tmp, "memory"))).size,
    };
    await fsp.writeFile(path.join(tmp, "snapshot.json"), JSON.stringify(snap, null, 2));
    await fsp.rm(out, { recursive: true, force: true });
    await fsp.rename(tmp, out);
    return snap;
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Removes the pool snapshots whose VMM arguments use one of `images` (store gc removed them). */
export async function removeSnapshotsOf(vmDir: string, images: readonly string[]): Promise<void> {
  if (images.length === 0) return;
  const root = path.join(vmDir, "snapshots");
  for (const name of await fsp.readdir(root).catch(() => [] as string[])) {
    const snap = await readSnapshot(path.join(root, name));
    if (snap && snap.args.some((a) => images.some((img) => a.includes(img)))) await fsp.rm(path.join(root, name), { recursive: true, force: true });
  }
}

/**
 * A restored VM is a copy of another: it gets its own hostname, and fresh
 * randomness from the host is written to /dev/urandom (mixed into the
 * kernel's input pool; Linux 6.1's crng reseeds from it within its reseed
 * interval). Both are file writes through the agent, so nothing is forked
 * in the guest. The MAC, tap and vsock CID are device properties: the
 * restore's VMM arguments carry the VM's own (VmmSnapshots.restore).
 *
 * A networked copy has a slot of its own (address, tap, MAC), but its
 * guest still holds the saved VM's: its eth0 (the virtio-net device's MAC
 * is in the migrated state too) and /etc/hosts. One exec of the busybox
 * corral-init left at /run/corral (`ip`, ~10 ms under TCG) moves eth0 to
 * the new MAC and address and routes it again; the host's bridge rules
 * drop whatever it sends before that (a MAC and address not its port's).
 * Its connections of the saved instant are gone with the old address.
 *
 * TCG's translation cache is not in the snapshot: the first fork+exec
 * after a restore costs 100-200 ms more than later ones. A VM restored
 * into a warm pool (`warmUp`) pays that now, in the background, with the
 * template's own shell (most commands come as sh -c), so the tenant who
 * claims it does not; a template without /bin/sh just skips it. A VM
 * restored for a caller who waits would only pay it twice (here, then for
 * its first command's own code).
 */
export async function reidentify(h: SandboxHandle, hostname: string, warmUp: boolean, net?: NetAttachment): Promise<void> {
  const c = await h.agent(5000);
  try {
    await Promise.all([c.writeFile("/proc/sys/kernel/hostname", hostname), c.writeFile("/dev/urandom", randomBytes(512))]);
    if (net) {
      const ip = (args: string) => `${GUEST_BUSYBOX} ip ${args}`;
      const script = [
        ip(`link set eth0 address ${net.mac}`),
        ip("addr flush dev eth0"),
        ip(`addr add ${net.address}/${net.prefix} dev eth0`),
        ip(`route replace default via ${net.gateway} dev eth0`),
      ].join(" && ");
      const r = await c.run({ argv: [GUEST_BUSYBOX, "sh", "-c", script], timeoutMs: 10_000 });
      if (r.exitCode !== 0) throw new Error(`its network: ${r.stderr.toString().trim() || `exit ${r.exitCode}`}`);
      await Promise.all([c.writeFile("/etc/hosts", hostsFile(net.address, hostname)), c.writeFile("/etc/resolv.conf", resolvConf(net.dns))]);
    }
    if (warmUp) await c.run({ cmd: "true" }).catch(() => undefined);
  } catch (e) {
    throw new BackendError(`could not give the restored VM its identity: ${(e as Error).message}`, { cause: e });
  } finally {
    c.close();
  }
}
