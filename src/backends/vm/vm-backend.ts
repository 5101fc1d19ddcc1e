import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { haveCommand, runCommand } from "../../host/command.js";
import { checkDiskNotShrunk, growDiskImage, makeDiskImage } from "../disk-image.js";
import { logTail } from "../../host/log-tail.js";
import { identityOf, vmIdentityOf } from "./identity.js";
import type { ResolvedSpec } from "../../core/sandbox-spec.js";
import { BackendError, ConflictError } from "../../core/errors.js";
import type { Store } from "../../store/store.js";
import { withLock } from "../../store/lock.js";
import {
  createOrUndo,
  startAgain,
  type BackendContext,
  type BackendReport,
  type CreateRequest,
  type SandboxBackend,
  type SandboxHandle,
  type SandboxIdentity,
  type SnapshotSaved,
} from "../backend.js";
import { cgroupMode, ContainerCgroup, removeSpareCgroups, type CgroupMode } from "../../host/cgroups.js";
import { diskUsage } from "../../store/tree.js";
import { probeAccel } from "./accel.js";
import { gcImages } from "./erofs.js";
import { gcClosureImages } from "../../store/nix/closure-image.js";
import { ensureInitrd } from "./initrd.js";
import { ensureKernel } from "./kernel.js";
import { planVm } from "./vm-plan.js";
import { shimPaths, type ShimConfig } from "./shim-files.js";
import { ShimLauncher } from "./shim-launcher.js";
import { VmHandle } from "./vm-handle.js";
import { readSnapshot, reidentify, removeSnapshotsOf, saveSnapshot, type VmSnapshot } from "./vm-snapshots.js";
import type { Accel, VmmDriver, VmmLaunch, VmmSnapshots } from "./vmm-driver.js";
import { usableVmmDriver, VMM_DRIVERS, vmmDriver } from "./vmm-drivers.js";


/**
 * Host memory a VM's cgroup may use beyond the guest's own: the shim (a
 * Node process, ~45 MiB), QEMU itself and its TCG translation cache,
 * virtiofsd. Without a cap a 256 MiB VM's QEMU reached 444 MiB under a
 * guest memory bomb (issue 18); here the cgroup of a 256 MiB VM peaked at
 * 328 MiB filling a guest tmpfs until the guest's OOM killer acted. Past
 * the cap the host OOM-kills inside the VM's cgroup and the daemon's watch
 * settles the VM as dead.
 */
export const VM_HOST_OVERHEAD = 256 * 1024 * 1024;
export interface VmBackendOptions {
  /** Kernel, initrd and probe results: `<state>/vm`. */
  readonly vmDir: string;
  readonly store: Store;
  /** Parent cgroup of every sandbox, shared with containers. */
  readonly cgroupParent: string;
  /**
   * First of the host uids QEMU of a VM recorded before uid ranges runs
   * as (2^20 of them, one picked per VM from its id); a newer VM's QEMU
   * runs as its own range's root (vmUid). Undefined: QEMU keeps root
   * (tests of the drivers alone).
   */
  readonly vmUidBase?: number;
  /** Force an accelerator instead of probing (CORRAL_VM_ACCEL). */
  readonly accel?: Accel;
  readonly bootTimeoutMs?: number;
  /** Keep a shim started ahead of need (ShimLauncher): for long-lived processes (the daemon). */
  readonly spareShim?: boolean;
}

/**
 * The VM backend of a state dir: kernels, images and snapshots under
 * `<state>/vm`; QEMU runs as the root of the sandbox's own uid range.
 */
export function vmBackend(ctx: BackendContext): VmBackend {
  return new VmBackend({ vmDir: path.join(ctx.stateDir, "vm"), store: ctx.store, cgroupParent: ctx.cgroupParent, vmUidBase: ctx.uidBase + 65536, spareShim: ctx.longLived });
}

/**
 * microVM sandboxes: Debian's cloud kernel, an initramfs with corral's init
 * and agent, the template as one shared read-only erofs image, a tmpfs
 * (ephemeral) or ext4 disk (persistent) upper layer, run by the VMM the
 * spec names (`vmm`: QEMU's `microvm` machine by default, Cloud Hypervisor
 * or Firecracker; vmm-drivers.ts) from one VmPlan. A shim process per VM
 * owns the VMM and serves the same agent socket a container has, so
 * everything above the backend is the same.
 */
export class VmBackend implements SandboxBackend {
  readonly kind = "vm" as const;
  /** A tap on corral's bridge (CreateRequest.net), the guest set up by corral-init. */
  readonly networking = true;
  readonly cgroupMode: CgroupMode;
  /** The accelerator probe, once per process (and per host boot across them, in /run). */
  private probed: Promise<Accel> | undefined;
  private readonly shims: ShimLauncher;

  constructor(private readonly o: VmBackendOptions) {
    this.cgroupMode = cgroupMode();
    this.shims = new ShimLauncher(o.spareShim ?? false, o.cgroupParent);
  }

  /** Lets go of the spare shim, if any (VMs keep running: their shims are their own). */
  close(): void {
    this.shims.close();
  }

  /** MAC, vsock CID and tap name from the sandbox's name, with what its spec fixes (identity.ts). */
  identity(name: string, spec: ResolvedSpec): SandboxIdentity {
    return identityOf(name, spec.identity);
  }

  /** Empty cgroups spare shims left when they were killed (shim.ts spareCgroup). */
  sweep(): Promise<void> {
    return removeSpareCgroups(this.cgroupMode, this.o.cgroupParent);
  }

  /** VM images of layer stacks nothing stands on any more, and the pool snapshots made on them. */
  async gc(live: readonly (readonly string[])[], graceMs: number): Promise<{ removed: string[]; freedBytes: number }> {
    const images = await gcImages(this.o.store, live, graceMs);
    await removeSnapshotsOf(this.o.vmDir, images.removed);
    // Nix closure images (vm-nix.ts): kept while a live stack holds their Nix layer.
    const closures = await gcClosureImages(this.o.store, live, graceMs);
    return { removed: [...images.removed, ...closures.removed], freedBytes: images.freedBytes + closures.freedBytes };
  }

  /** Where named snapshots live: `<state>/vm/saved/<snapshot id>`. */
  savedDir(snapshotId: string): string {
    return path.join(this.o.vmDir, "saved", snapshotId);
  }

  async hasSnapshot(snapshotId: string): Promise<boolean> {
    return (await readSnapshot(this.savedDir(snapshotId))) !== undefined;
  }

  async removeSnapshot(snapshotId: string): Promise<void> {
    await fsp.rm(this.savedDir(snapshotId), { recursive: true, force: true });
  }

  /** Available with QEMU and mkfs.erofs; the notes also say which other VMMs can run here. */
  async probe(): Promise<BackendReport> {
    const missing: string[] = [];
    if (!(await haveCommand(VMM_DRIVERS.qemu.binary))) missing.push(`${VMM_DRIVERS.qemu.binary} is not installed (apt-get install qemu-system-x86)`);
    if (!(await haveCommand("mkfs.erofs"))) missing.push("mkfs.erofs is not installed (apt-get install erofs-utils)");
    const notes = missing.length ? [...missing] : [`accelerator: ${await this.accel()}`];
    for (const d of [VMM_DRIVERS["cloud-hypervisor"], VMM_DRIVERS.firecracker]) {
      const a = d.available();
      notes.push(`vmm ${d.name}: ${a.ok ? `available (${a.binary})` : a.reason}`);
    }
    return { kind: "vm", available: missing.length === 0, notes };
  }

  private async accel(): Promise<Accel> {
    if (this.o.accel) return this.o.accel;
    const env = process.env["CORRAL_VM_ACCEL"];
    if (env === "kvm" || env === "tcg") return env;
    // Asked twice per create; the answer lasts as long as the host's boot.
    this.probed ??= (async () => {
      const kernel = await ensureKernel(this.o.vmDir);
      return probeAccel(kernel, await ensureInitrd(this.o.vmDir, kernel));
    })();
    return this.probed.catch((e: unknown) => {
      this.probed = undefined;
      throw e;
    });
  }

  /** QEMU's accelerator (probed); the VMMs that need KVM have no other. */
  private accelFor(driver: VmmDriver): Promise<Accel> {
    return driver.needsKvm ? Promise.resolve("kvm") : this.accel();
  }

  cgroupFor(id: string): ContainerCgroup {
    return new ContainerCgroup(this.cgroupMode, `${this.o.cgroupParent}/${id}`);
  }

  /** Refused with a 422 naming the binary, before anything is made, when the spec's VMM cannot run here. */
  async create(req: CreateRequest): Promise<SandboxHandle> {
    const driver = usableVmmDriver(req.spec.vmm);
    return createOrUndo(this.attach(req.id, req.dir), async () => {
      // A VM with shares cannot be snapshotted (vhost-user-fs does not migrate): it boots cold.
      const shared = (req.shares?.length ?? 0) > 0 || req.nixStore?.hostStore === true;
      if (req.warm && req.spec.lifetime.mode === "ephemeral" && driver.snapshots && !shared) return this.createWarm(req, driver, driver.snapshots);
      if (req.spec.lifetime.mode === "persistent") {
        const disk = path.join(req.dir, "disk.img");
        await makeDiskImage(disk, req.spec.resources.disk);
        await this.giveToVmm(driver, req, disk);
      }
      await this.launch(req, driver);
    });
  }

  async start(req: CreateRequest): Promise<SandboxHandle> {
    const driver = usableVmmDriver(req.spec.vmm);
    return startAgain(this.attach(req.id, req.dir), async () => {
      // Its spec's disk grew while it was stopped (a declared change): the image grows with it, before the guest mounts it.
      if (req.spec.lifetime.mode === "persistent") await growDiskImage(path.join(req.dir, "disk.img"), req.spec.resources.disk);
      await this.launch(req, driver);
    });
  }

  /** A stopped persistent VM's new spec: it plans at every start, so only a disk that would shrink is refused (disk-image.ts). */
  async reconfigure(req: CreateRequest): Promise<void> {
    checkDiskNotShrunk(path.join(req.dir, "disk.img"), req.spec.resources.disk);
  }

  /** The VMM process of a cold boot of `req`, as its driver renders it. */
  private async coldLaunch(req: CreateRequest, driver: VmmDriver): Promise<VmmLaunch> {
    const accel = await this.accelFor(driver);
    const plan = await planVm(this.o.vmDir, this.o.store, req, driver, accel);
    return driver.render(plan, { dir: req.dir, accel, runAs: this.vmUid(req) });
  }

  /**
   * The uid QEMU of sandbox `req` runs as: the root of the sandbox's own
   * range (runtime/uid-ranges.ts), which no other sandbox's processes or
   * files have. The guest's own uids live inside the VM, so on the host
   * the range is only QEMU and what it opens (its disk image). A sandbox
   * recorded before ranges existed keeps the older choice: one of 2^20
   * from the id's first 20 bits (two VMs could share one).
   */
  vmUid(req: Pick<CreateRequest, "id" | "uidBase">): number | undefined {
    if (this.o.vmUidBase === undefined) return undefined;
    return req.uidBase ?? this.o.vmUidBase + (parseInt(req.id.slice(0, 5), 16) & 0xfffff);
  }

  /**
   * A VM's own disk belongs to its QEMU's uid (0600): QEMU reopens it when a
   * migration (snapshot) completes, after it has dropped root. The other
   * VMMs keep root.
   */
  private async giveToVmm(driver: VmmDriver, req: CreateRequest, file: string): Promise<void> {
    const uid = this.vmUid(req);
    if (uid !== undefined && driver.name === "qemu") await fsp.chown(file, uid, uid);
  }

  /**
   * An ephemeral VM restored from the snapshot of a VM of the same shape
   * (kernel, initrd, template image, vcpus, memory, disk), made first from
   * this very VM when there is none: it boots cold, is snapshotted while
   * idle, and goes on as the first of its pool.
   */
  private async createWarm(req: CreateRequest, driver: VmmDriver, snaps: VmmSnapshots): Promise<void> {
    const launch = await this.coldLaunch(req, driver);
    const dir = path.join(this.o.vmDir, "snapshots", snaps.shape(snaps.portable(launch, req.dir), req.hostname));
    const existing = await readSnapshot(dir);
    if (existing) return this.restoreFrom(req, snaps, existing);
    await fsp.mkdir(path.dirname(dir), { recursive: true });
    await withLock(`${dir}.lock`, async () => {
      const again = await readSnapshot(dir);
      if (again) return this.restoreFrom(req, snaps, again);
      await this.launch(req, driver, launch);
      await saveSnapshot(snaps, req.dir, dir, launch);
    });
  }

  /** Saves the running VM in `dir` as named snapshot `snapshotId`: its own VMM arguments, memory, and disk if it has one. */
  async saveNamed(dir: string, snapshotId: string): Promise<SnapshotSaved> {
    const launch = launchOf(JSON.parse(await fsp.readFile(shimPaths(dir).config, "utf8")) as ShimConfig);
    if (launch.helpers?.length) {
      // QEMU 7.2 marks vhost-user-fs unmigratable: the virtiofsd's state (open files, the guest's FUSE requests) is not in the stream.
      throw new ConflictError("this VM has host shares (virtiofs), which QEMU cannot save: a VM with shares cannot be snapshotted");
    }
    const snaps = snapshotsOf(vmmDriver(launch.vmm));
    const out = this.savedDir(snapshotId);
    // 0711: QEMU, running as its own uid, writes into a dir of its own in here.
    await fsp.mkdir(path.dirname(out), { recursive: true, mode: 0o711 });
    try {
      const snap = await saveSnapshot(snaps, dir, out, launch);
      const bytes = snap.bytes + (await diskUsage(path.join(out, "disk.img")).catch(() => 0));
      return { bytes, createdAt: snap.createdAt };
    } catch (e) {
      await fsp.rm(out, { recursive: true, force: true });
      throw e;
    }
  }

  /** A new VM from named snapshot `snapshotId`. */
  async restore(req: CreateRequest, snapshotId: string): Promise<SandboxHandle> {
    const snap = await readSnapshot(this.savedDir(snapshotId));
    if (!snap) throw new BackendError(`snapshot ${snapshotId} has lost its files on this host`);
    const driver = usableVmmDriver(snap.vmm);
    if (req.spec.vmm !== undefined && req.spec.vmm !== driver.name) {
      throw new ConflictError(`snapshot ${snapshotId} was saved by ${driver.name}: it cannot be restored as a ${req.spec.vmm} VM`);
    }
    const snaps = snapshotsOf(driver);
    return createOrUndo(this.attach(req.id, req.dir), () => this.restoreFrom(req, snaps, snap));
  }

  /** Starts `req` from a snapshot: same devices, RAM and device state from the file, then its own identity. */
  private async restoreFrom(req: CreateRequest, snaps: VmmSnapshots, snap: VmSnapshot): Promise<void> {
    const launch = snaps.restore(snap.args, path.join(snap.dir, "memory"), { dir: req.dir, identity: vmIdentityOf(req), runAs: this.vmUid(req) });
    const disk = path.join(snap.dir, "disk.img");
    if (fs.existsSync(disk)) {
      await runCommand("cp", ["--sparse=always", disk, path.join(req.dir, "disk.img")]);
      await this.giveToVmm(vmmDriver(launch.vmm), req, path.join(req.dir, "disk.img"));
    }
    await this.launch(req, vmmDriver(launch.vmm), launch);
    await reidentify(this.attach(req.id, req.dir), req.hostname, req.warm === true, req.net);
  }

  /**
   * Starts the shim and the VMM as `launch` (a cold boot's when not
   * given); resolves once the agent answers.
   */
  private async launch(req: CreateRequest, driver: VmmDriver, given?: VmmLaunch & Pick<ShimConfig, "incoming">): Promise<void> {
    const launch = given ?? (await this.coldLaunch(req, driver));
    const accel = await this.accelFor(driver);
    const p = shimPaths(req.dir);
    const cfg: ShimConfig = {
      ...launch,
      bootTimeoutMs: this.o.bootTimeoutMs ?? (accel === "kvm" ? 15_000 : 60_000),
      cgroup: `${this.o.cgroupParent}/${req.id}`,
      // A whole number of vCPUs is its own bound; a fraction is a share of them.
      ...(Number.isInteger(req.spec.resources.vcpus) ? {} : { cpuShare: req.spec.resources.vcpus }),
      memoryLimit: req.spec.resources.memory + VM_HOST_OVERHEAD,
    };
    for (const [file, content] of Object.entries(launch.files ?? {})) await fsp.writeFile(file, content, { mode: 0o600 });
    await fsp.writeFile(p.config, JSON.stringify(cfg, null, 2), { mode: 0o600 });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const c = this.shims.start(req.dir);
        let text = "";
        const r = c.stdio[3] as NodeJS.ReadableStream;
        r.on("data", (d: Buffer) => (text += d.toString()));
        r.on("end", () => resolve(text.trim()));
        r.on("error", () => resolve(text.trim()));
        c.on("error", reject);
      });
      if (line !== "ready") {
        const tail = await logTail(p.console, 8);
        const shimLog = await logTail(p.log, 3);
        throw new BackendError(`vm ${req.id} did not start: ${line || "the shim exited"}${tail ? `; console: ${tail}` : ""}${shimLog ? `; shim: ${shimLog}` : ""}`);
      }
    } finally {
      this.shims.refillSoon();
    }
  }

  attach(id: string, dir: string): SandboxHandle {
    return new VmHandle(id, dir, this);
  }
}

/** What a driver can snapshot with, or a ConflictError saying it cannot. */
function snapshotsOf(driver: VmmDriver): VmmSnapshots {
  if (!driver.snapshots) throw new ConflictError(`corral cannot snapshot a VM run by ${driver.name}: snapshots and restores need vmm "qemu"`);
  return driver.snapshots;
}

/** The launch a VM's vm.json records; one written before there were drivers was QEMU's, with `qemu` for `binary`. */
function launchOf(cfg: ShimConfig & { qemu?: string }): VmmLaunch {
  if (cfg.vmm !== undefined) return cfg;
  // No identity reached QEMU's arguments then: nothing of it to mark.
  return { vmm: "qemu", binary: cfg.qemu ?? VMM_DRIVERS.qemu.binary, args: cfg.args, wiring: { kind: "fds" }, guestStop: "poweroff", identity: { mac: "", tap: "", cid: -1 } };
}
