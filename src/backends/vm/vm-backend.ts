import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { AgentClient } from "../../agent/client.js";
import { haveCommand, runCommand } from "../../host/command.js";
import { logTail, tailOfFiles } from "../../host/log-tail.js";
import { killQuietly, procStat, processRunning } from "../../host/process.js";
import { vmIdentity } from "./identity.js";
import { BackendError } from "../../core/errors.js";
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
  type SandboxStatus,
  type SnapshotSaved,
  type UsageSample,
} from "../backend.js";
import { cgroupMode, ContainerCgroup, removeSpareCgroups, type CgroupMode } from "../../host/cgroups.js";
import { diskUsage } from "../../store/tree.js";
import { probeAccel } from "./accel.js";
import { ensureTemplateImage, gcImages } from "./erofs.js";
import { ensureInitrd } from "./initrd.js";
import { bootImage, ensureKernel } from "./kernel.js";
import type { VmPlan } from "./plan.js";
import { Qmp } from "./qmp.js";
import { guestCmdline, qemuArgs, QEMU, withRunAs, type Accel } from "./qemu.js";
import { shimPaths, type ShimConfig, type ShimExit } from "./shim.js";
import { ShimLauncher } from "./shim-launcher.js";

export interface VmBackendOptions {
  /** Kernel, initrd and probe results: `<state>/vm`. */
  readonly vmDir: string;
  readonly store: Store;
  /** Parent cgroup of every sandbox, shared with containers. */
  readonly cgroupParent: string;
  /**
   * First of the host uids QEMU processes run as (2^20 of them, one picked
   * per VM from its id); just past the containers' range. Undefined: QEMU
   * keeps root (tests of the drivers alone).
   */
  readonly vmUidBase?: number;
  /** Force an accelerator instead of probing (CORRAL_VM_ACCEL). */
  readonly accel?: Accel;
  readonly bootTimeoutMs?: number;
  /** Keep a shim started ahead of need (ShimLauncher): for long-lived processes (the daemon). */
  readonly spareShim?: boolean;
}
const MiB = 1024 * 1024;

/**
 * The VM backend of a state dir: kernels, images and snapshots under
 * `<state>/vm`; QEMU runs as uids just past the containers' range.
 */
export function vmBackend(ctx: BackendContext): VmBackend {
  return new VmBackend({ vmDir: path.join(ctx.stateDir, "vm"), store: ctx.store, cgroupParent: ctx.cgroupParent, vmUidBase: ctx.uidBase + 65536, spareShim: ctx.longLived });
}

/**
 * microVM sandboxes on QEMU's `microvm` machine: Debian's cloud kernel, an
 * initramfs with corral's init and agent, the template as one shared
 * read-only erofs image, a tmpfs (ephemeral) or ext4 disk (persistent)
 * upper layer. A shim process per VM owns QEMU and serves the same agent
 * socket a container has, so everything above the backend is the same.
 */
export class VmBackend implements SandboxBackend {
  readonly kind = "vm" as const;
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

  /** MAC, vsock CID and tap name from the sandbox's name (identity.ts). */
  identity(name: string): SandboxIdentity {
    return vmIdentity(name);
  }

  /** Empty cgroups spare shims left when they were killed (shim.ts spareCgroup). */
  sweep(): Promise<void> {
    return removeSpareCgroups(this.cgroupMode, this.o.cgroupParent);
  }

  /** VM images of layer stacks nothing stands on any more, and the pool snapshots made on them. */
  async gc(live: readonly (readonly string[])[], graceMs: number): Promise<{ removed: string[]; freedBytes: number }> {
    const images = await gcImages(this.o.store, live, graceMs);
    await removeSnapshotsOf(this.o.vmDir, images.removed);
    return images;
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

  async probe(): Promise<BackendReport> {
    const notes: string[] = [];
    if (!(await haveCommand(QEMU))) notes.push(`${QEMU} is not installed (apt-get install qemu-system-x86)`);
    if (!(await haveCommand("mkfs.erofs"))) notes.push("mkfs.erofs is not installed (apt-get install erofs-utils)");
    if (notes.length === 0) notes.push(`accelerator: ${await this.accel()}`);
    return { kind: "vm", available: notes.length === 1 && notes[0]!.startsWith("accelerator"), notes };
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


  cgroupFor(id: string): ContainerCgroup {
    return new ContainerCgroup(this.cgroupMode, `${this.o.cgroupParent}/${id}`);
  }

  create(req: CreateRequest): Promise<SandboxHandle> {
    return createOrUndo(this.attach(req.id, req.dir), async () => {
      if (req.warm && req.spec.lifetime.mode === "ephemeral") return this.createWarm(req);
      if (req.spec.lifetime.mode === "persistent") {
        const disk = path.join(req.dir, "disk.img");
        const h = await fsp.open(disk, "wx", 0o600);
        await h.truncate(req.spec.resources.disk);
        await h.close();
        await runCommand("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", disk]);
        await this.giveToQemu(req.id, disk);
      }
      await this.launch(req);
    });
  }

  async start(req: CreateRequest): Promise<SandboxHandle> {
    return startAgain(this.attach(req.id, req.dir), () => this.launch(req));
  }

  /** The plan for a sandbox: the same one the other hypervisors' drivers render. */
  async plan(req: CreateRequest, accel: Accel): Promise<VmPlan> {
    const kernel = await ensureKernel(this.o.vmDir);
    const initrd = await ensureInitrd(this.o.vmDir, kernel);
    const image = await ensureTemplateImage(this.o.store, req.layers.map((d) => path.basename(d)));
    const persistent = req.spec.lifetime.mode === "persistent";
    const p = shimPaths(req.dir);
    return {
      name: req.id,
      kernel: bootImage(kernel),
      initrd: initrd.path,
      cmdline: guestCmdline({
        hostname: req.hostname,
        accel,
        upper: persistent ? { kind: "disk" } : { kind: "tmpfs", bytes: req.spec.resources.disk },
        zeroFreedPages: req.warm === true && !persistent,
        pids: req.spec.resources.pids,
      }),
      vcpus: Math.max(1, Math.ceil(req.spec.resources.vcpus)),
      memoryMiB: Math.max(64, Math.ceil(req.spec.resources.memory / MiB)),
      disks: [
        { id: "root", path: image, readOnly: true },
        ...(persistent ? [{ id: "data", path: path.join(req.dir, "disk.img"), readOnly: false }] : []),
      ],
      agent: { kind: "virtio-serial", socket: p.agentSocket },
      consoleLog: p.console,
      identity: vmIdentity(req.hostname),
    };
  }

  /** The QEMU arguments of a cold boot of `req`. */
  private async coldArgs(req: CreateRequest): Promise<{ args: string[]; accel: Accel }> {
    const accel = await this.accel();
    const plan = await this.plan(req, accel);
    return { args: qemuArgs(plan, accel, shimPaths(req.dir).qmpSocket, this.vmUid(req.id)), accel };
  }

  /**
   * The uid QEMU of sandbox `id` runs as: one of 2^20 from the id's first
   * 20 bits. Two VMs rarely share one (they then could signal each other's
   * QEMU, never reach root or containers).
   */
  vmUid(id: string): number | undefined {
    return this.o.vmUidBase === undefined ? undefined : this.o.vmUidBase + (parseInt(id.slice(0, 5), 16) & 0xfffff);
  }

  /**
   * A VM's own disk belongs to its QEMU's uid (0600): QEMU reopens it when a
   * migration (snapshot) completes, after it has dropped root.
   */
  private async giveToQemu(id: string, file: string): Promise<void> {
    const uid = this.vmUid(id);
    if (uid !== undefined) await fsp.chown(file, uid, uid);
  }

  /**
   * An ephemeral VM restored from the snapshot of a VM of the same shape
   * (kernel, initrd, template image, vcpus, memory, disk), made first from
   * this very VM when there is none: it boots cold, is snapshotted while
   * idle, and goes on as the first of its pool.
   */
  private async createWarm(req: CreateRequest): Promise<void> {
    const { args } = await this.coldArgs(req);
    const key = snapshotKey(args, req.dir, req.hostname);
    const dir = path.join(this.o.vmDir, "snapshots", key);
    const existing = await readSnapshot(dir);
    if (existing) return this.restoreFrom(req, existing);
    await fsp.mkdir(path.dirname(dir), { recursive: true });
    await withLock(`${dir}.lock`, async () => {
      const again = await readSnapshot(dir);
      if (again) return this.restoreFrom(req, again);
      await this.launch(req, args);
      await snapshotVm(req.dir, dir, args.map((a) => a.replaceAll(req.dir, DIR_MARK)), this.vmUid(req.id));
    });
  }

  /** Saves the running VM in `dir` as named snapshot `snapshotId` (see snapshotVm): its own QEMU arguments, memory, and disk if it has one. */
  async saveNamed(dir: string, snapshotId: string): Promise<SnapshotSaved> {
    const out = this.savedDir(snapshotId);
    // 0711: QEMU, running as its own uid, writes into a dir of its own in here.
    await fsp.mkdir(path.dirname(out), { recursive: true, mode: 0o711 });
    try {
      const cfg = JSON.parse(await fsp.readFile(shimPaths(dir).config, "utf8")) as ShimConfig;
      const snap = await snapshotVm(dir, out, cfg.args.map((a) => a.replaceAll(dir, DIR_MARK)), runAsOf(cfg.args));
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
    return createOrUndo(this.attach(req.id, req.dir), () => this.restoreFrom(req, snap));
  }

  /** Starts `req` from a snapshot: same devices, RAM and device state from the file, then its own identity. */
  private async restoreFrom(req: CreateRequest, snap: VmSnapshot): Promise<void> {
    const uid = this.vmUid(req.id);
    const saved = snap.args.map((a) => a.replaceAll(DIR_MARK, req.dir));
    const args = uid === undefined ? saved : withRunAs(saved, uid);
    const disk = path.join(snap.dir, "disk.img");
    if (fs.existsSync(disk)) {
      await runCommand("cp", ["--sparse=always", disk, path.join(req.dir, "disk.img")]);
      await this.giveToQemu(req.id, path.join(req.dir, "disk.img"));
    }
    await this.launch(req, args, path.join(snap.dir, "memory"));
    await reidentify(this.attach(req.id, req.dir), req.hostname, req.warm === true);
  }

  /**
   * Starts the shim and QEMU with `args` (a cold boot's when not given),
   * from the saved state in `incoming` if given; resolves once the agent answers.
   */
  private async launch(req: CreateRequest, args?: string[], incoming?: string): Promise<void> {
    const accel = await this.accel();
    const p = shimPaths(req.dir);
    const cfg: ShimConfig = {
      qemu: QEMU,
      args: args ?? (await this.coldArgs(req)).args,
      bootTimeoutMs: this.o.bootTimeoutMs ?? (accel === "kvm" ? 15_000 : 60_000),
      cgroup: `${this.o.cgroupParent}/${req.id}`,
      // A whole number of vCPUs is its own bound; a fraction is a share of them.
      ...(Number.isInteger(req.spec.resources.vcpus) ? {} : { cpuShare: req.spec.resources.vcpus }),
      ...(incoming === undefined ? {} : { incoming }),
    };
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

const DIR_MARK = "@SANDBOX_DIR@";
/** The guest's cgroup for the agent and all it starts (init.c SANDBOX_CGROUP). */
const GUEST_SANDBOX_CGROUP = "/sys/fs/cgroup/sandbox";

/** The guest kernel's OOM kills (its /proc/vmstat). */
async function guestOomKills(c: AgentClient): Promise<number> {
  const vmstat = (await c.readFileBuffer("/proc/vmstat")).toString();
  return Number(/^oom_kill (\d+)$/m.exec(vmstat)?.[1] ?? 0);
}

/** The processes in the guest's sandbox cgroup (corral-init puts the agent there, with the spec's pids limit); undefined without one. */
function guestPids(c: AgentClient): Promise<number | undefined> {
  return c.readFileBuffer(`${GUEST_SANDBOX_CGROUP}/pids.current`).then((b) => Number(b.toString()), () => undefined);
}

/** The uid in a QEMU command line's -runas, if any. */
function runAsOf(args: readonly string[]): number | undefined {
  const i = args.indexOf("-runas");
  return i >= 0 ? Number(args[i + 1]!.split(":")[0]) : undefined;
}

export interface VmSnapshot {
  readonly dir: string;
  /** QEMU arguments of the VM it was taken from, its directory as DIR_MARK. */
  readonly args: readonly string[];
  readonly createdAt: string;
  /** Bytes of the memory and device state file. */
  readonly bytes: number;
}

/** What makes two VMs restorable from one snapshot: everything but their directory, hostname and QEMU uid. */
export function snapshotKey(args: readonly string[], dir: string, hostname: string): string {
  const norm = withRunAs(args, 0).map((a) => a.replaceAll(dir, DIR_MARK).replace(`corral.hostname=${hostname}`, "corral.hostname=@"));
  return createHash("sha256").update(JSON.stringify(norm)).digest("hex").slice(0, 32);
}

/** Removes the pool snapshots whose QEMU arguments use one of `images` (store gc removed them). */
export async function removeSnapshotsOf(vmDir: string, images: readonly string[]): Promise<void> {
  if (images.length === 0) return;
  const root = path.join(vmDir, "snapshots");
  for (const name of await fsp.readdir(root).catch(() => [] as string[])) {
    const snap = await readSnapshot(path.join(root, name));
    if (snap && snap.args.some((a) => images.some((img) => a.includes(img)))) await fsp.rm(path.join(root, name), { recursive: true, force: true });
  }
}

async function readSnapshot(dir: string): Promise<VmSnapshot | undefined> {
  try {
    return JSON.parse(await fsp.readFile(path.join(dir, "snapshot.json"), "utf8")) as VmSnapshot;
  } catch {
    return undefined;
  }
}

/**
 * Saves a running, idle VM: migrates RAM and device state to `out/memory`
 * (QEMU's migration stream; zero pages cost a few bytes; QEMU pauses the
 * VM for the last pass), records the arguments a restore must repeat, and
 * resumes it. An ephemeral VM's root is the shared read-only image and its
 * writable layer tmpfs, so RAM is all its state; a persistent VM's disk
 * image is copied (sparse) while the VM is still paused after the last
 * pass, so memory and disk are of the same instant (the guest's own dirty
 * pages are in the memory image; QEMU's writes are in the host page cache,
 * which the copy reads).
 */
export async function snapshotVm(vmDir: string, out: string, args: readonly string[], qemuUid?: number): Promise<VmSnapshot> {
  const tmp = `${out}.tmp-${randomBytes(4).toString("hex")}`;
  await fsp.mkdir(tmp, { recursive: true, mode: 0o700 });
  // QEMU (no longer root) writes the stream through `exec:cat`: into a dir of its uid, handed back after.
  if (qemuUid !== undefined) await fsp.chown(tmp, qemuUid, qemuUid);
  // Clean page cache is dropped first: with init_on_free=1 (qemu.ts) the
  // freed pages are zero, which the migration stream carries as a flag.
  await dropCaches(vmDir).catch(() => {});
  const q = await Qmp.connect(shimPaths(vmDir).qmpSocket);
  try {
    // Live migration, not stop-then-migrate: the run state travels with the
    // stream, and a guest saved paused would be restored paused.
    await q.execute("migrate", { uri: `exec:cat > ${shellQuote(path.join(tmp, "memory"))}` });
    for (;;) {
      const st = (await q.execute("query-migrate")) as { status?: string; "error-desc"?: string };
      if (st.status === "completed") break;
      if (st.status === "failed" || st.status === "cancelled") throw new BackendError(`snapshot of ${vmDir} failed: ${st["error-desc"] ?? st.status}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    if (qemuUid !== undefined) {
      await fsp.chown(tmp, 0, 0);
      await fsp.chown(path.join(tmp, "memory"), 0, 0);
      await fsp.chmod(path.join(tmp, "memory"), 0o600);
    }
    const disk = path.join(vmDir, "disk.img");
    if (fs.existsSync(disk)) await runCommand("cp", ["--sparse=always", disk, path.join(tmp, "disk.img")]);
    const snap: VmSnapshot = { dir: out, args, createdAt: new Date().toISOString(), bytes: (await fsp.stat(path.join(tmp, "memory"))).size };
    await fsp.writeFile(path.join(tmp, "snapshot.json"), JSON.stringify(snap, null, 2));
    await fsp.rm(out, { recursive: true, force: true });
    await fsp.rename(tmp, out);
    return snap;
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    await q.execute("cont").catch(() => {});
    q.close();
  }
}

async function dropCaches(vmDir: string): Promise<void> {
  const c = await AgentClient.connect(shimPaths(vmDir).agentSocket, 2000);
  try {
    await c.run({ argv: ["/run/corral/busybox", "sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], timeoutMs: 5000 });
  } finally {
    c.close();
  }
}

/**
 * A restored VM is a copy of another: it gets its own hostname, and fresh
 * randomness from the host is written to /dev/urandom (mixed into the
 * kernel's input pool; Linux 6.1's crng reseeds from it within its reseed
 * interval). Both are file writes through the agent, so nothing is forked
 * in the guest. The MAC and vsock CID are device properties set from the
 * VM's own name when those devices exist.
 *
 * TCG's translation cache is not in the snapshot: the first fork+exec
 * after a restore costs 100-200 ms more than later ones. A VM restored
 * into a warm pool (`warmUp`) pays that now, in the background, with the
 * template's own shell (most commands come as sh -c), so the tenant who
 * claims it does not; a template without /bin/sh just skips it. A VM
 * restored for a caller who waits would only pay it twice (here, then for
 * its first command's own code).
 */
async function reidentify(h: SandboxHandle, hostname: string, warmUp: boolean): Promise<void> {
  const c = await h.agent(5000);
  try {
    await Promise.all([c.writeFile("/proc/sys/kernel/hostname", hostname), c.writeFile("/dev/urandom", randomBytes(512))]);
    if (warmUp) await c.run({ cmd: "true" }).catch(() => undefined);
  } catch (e) {
    throw new BackendError(`could not give the restored VM its identity: ${(e as Error).message}`, { cause: e });
  } finally {
    c.close();
  }
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;


export class VmHandle implements SandboxHandle {
  private readonly paths: ReturnType<typeof shimPaths>;
  constructor(
    readonly id: string,
    readonly dir: string,
    private readonly backend: VmBackend,
  ) {
    this.paths = shimPaths(dir);
  }

  agent(timeoutMs = 5000): Promise<AgentClient> {
    return AgentClient.connect(this.paths.agentSocket, timeoutMs);
  }

  /** The guest's agent is its PID 1 with every capability: it writes the name itself. */
  async rename(hostname: string): Promise<void> {
    const c = await this.agent();
    try {
      await c.writeFile("/proc/sys/kernel/hostname", hostname);
    } finally {
      c.close();
    }
  }

  private shimPid(): number | undefined {
    try {
      const [pid, started] = fs.readFileSync(this.paths.shimPid, "utf8").trim().split(" ").map(Number);
      if (!pid || !processRunning(pid)) return undefined;
      // The pid must still be our shim's, not a recycled one: same start time.
      if (started !== undefined) return procStat(pid)?.startTime === started ? pid : undefined;
      // A shim of an earlier version wrote its pid alone and had its dir on its command line.
      return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(this.dir) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  async status(): Promise<SandboxStatus> {
    if (this.shimPid()) return "running";
    const exit = await this.exit();
    if (exit) return exit.requested ? "stopped" : "crashed";
    return fs.existsSync(this.dir) ? "stopped" : "missing";
  }

  /** How the VM last ended, when it has. */
  async exit(): Promise<ShimExit | undefined> {
    try {
      return JSON.parse(await fsp.readFile(this.paths.exit, "utf8")) as ShimExit;
    } catch {
      return undefined;
    }
  }

  /**
   * CPU and memory are QEMU's (the host cgroup's); processes and OOM kills
   * are the guest's (read through the agent), plus the host cgroup's OOM
   * kills (QEMU itself).
   */
  async stats(): Promise<UsageSample> {
    const cg = this.backend.cgroupFor(this.id);
    const [cpuNanos, memoryBytes, hostPids, hostOom, guest] = await Promise.all([
      cg.cpuNanos(),
      cg.memoryBytes(),
      cg.pids(),
      cg.oomKills(),
      this.withGuest((c) => Promise.all([guestOomKills(c), guestPids(c)])),
    ]);
    return { cpuNanos, memoryBytes, pids: guest?.[1] ?? hostPids, oomKills: hostOom + (guest?.[0] ?? 0) };
  }

  /** OOM kills of this VM: the guest kernel's (a command killed for the VM's memory size dies there) and the host cgroup's. */
  async oomKills(): Promise<number> {
    const [host, guest] = await Promise.all([this.backend.cgroupFor(this.id).oomKills(), this.withGuest(guestOomKills)]);
    return host + (guest ?? 0);
  }

  /** `read` over a connection to the guest's agent; undefined when the guest does not answer. */
  private async withGuest<T>(read: (c: AgentClient) => Promise<T>): Promise<T | undefined> {
    const c = await this.agent(2000).catch(() => undefined);
    if (!c) return undefined;
    try {
      return await read(c);
    } catch {
      return undefined;
    } finally {
      c.close();
    }
  }

  /**
   * Asks the shim to power the guest off (it syncs first), waits for it,
   * then kills whatever is left in the VM's cgroup and removes it.
   */
  async stop(): Promise<void> {
    const pid = this.shimPid();
    if (pid) {
      const start = procStat(pid)?.startTime;
      killQuietly(pid, "SIGTERM");
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline && processRunning(pid) && procStat(pid)?.startTime === start) {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const cg = this.backend.cgroupFor(this.id);
    for (const p of await cg.processes()) killQuietly(p);
    await cg.remove();
    for (const f of [this.paths.agentSocket, this.paths.qmpSocket, this.paths.shimPid, this.paths.qemuPid]) await fsp.rm(f, { force: true });
  }

  async destroy(): Promise<void> {
    await this.stop();
    await fsp.rm(this.dir, { recursive: true, force: true });
  }

  /** The serial console: kernel messages, a panic, the guest init (one rotation kept). */
  logs(maxBytes: number): Promise<string> {
    return tailOfFiles([`${this.paths.console}.1`, this.paths.console], maxBytes);
  }

  /** A persistent VM's ext4 image, whose /upper is its writable layer. */
  hasDisk(): boolean {
    return fs.existsSync(path.join(this.dir, "disk.img"));
  }

  exportWritableLayer(dest: string, scratch: string): Promise<void> {
    return copyUpperFromImage(path.join(this.dir, "disk.img"), dest, scratch);
  }

  snapshot(snapshotId: string): Promise<SnapshotSaved> {
    return this.backend.saveNamed(this.dir, snapshotId);
  }
}

/**
 * Copies /upper out of a stopped VM's ext4 disk image (mounted on a loop
 * device in a private mount namespace, so the mount cannot outlive the
 * copy; read-write, because a guest powered off with its disk mounted
 * leaves a journal to replay, as its next boot would). The guest's overlay
 * whiteouts and opaque-dir xattrs come along (cp -a), as from a
 * container's upper dir; owners are the guest's, which the store shifts
 * like a builder's output.
 */
async function copyUpperFromImage(image: string, dest: string, mnt: string): Promise<void> {
  await fsp.mkdir(mnt);
  try {
    await runCommand("unshare", ["-m", "--propagation", "private", "sh", "-c", 'mount -o loop "$1" "$2" && cp -a -- "$2/upper" "$3"', "sh", image, mnt, dest]);
  } finally {
    await fsp.rmdir(mnt).catch(() => {});
  }
}
