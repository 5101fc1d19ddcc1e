import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { logTail } from "../../host/log-tail.js";
import { nativeBinary } from "../../host/native.js";
import { realHost, type Host } from "../../host/host.js";
import { BackendError } from "../../core/errors.js";
import { createOrUndo, startAgain, type BackendContext, type BackendReport, type CreateRequest, type SandboxBackend, type SandboxHandle } from "../backend.js";
import { joinNamespace, NetJoiner } from "../../network/container-link.js";
import { ContainerHandle, containerPaths, LOG_MAX, readAttachment, type ContainerParts } from "./container-handle.js";
import { hostsFile, resolvConf } from "../../network/guest-files.js";
import { CrunRuntime } from "./crun.js";
import { ociConfig, UID_RANGE } from "./oci-config.js";
import type { OciRuntime } from "./oci-runtime.js";
import { checkDiskNotShrunk, growDiskImage, makeDiskImage } from "../disk-image.js";
import { bindShareArgs, makeShareStages, shareStage } from "../share-stage.js";
import type { Store } from "../../store/store.js";
import { ensureClosureTree, gcClosureTrees } from "../../store/nix/closure-image.js";

export { containerPaths } from "./container-handle.js";

export interface ContainerBackendOptions {
  /** Directory (in the store) holding corral-agent; mounted into sandboxes. */
  readonly agentDir: string;
  /** Path of the corral-launch binary on the host. */
  readonly launcher: string;
  /** The store's uid range (the shared layers' owners); a request's own range is id-mapped onto it. */
  readonly uidBase: number;
  /** Parent cgroup of every sandbox, e.g. "corral". */
  readonly cgroupParent: string;
  /** The store: a writable Nix store's lower layer is a closure tree in it (store/nix/closure-image.ts). */
  readonly store?: Store;
  /** A long-lived process (the daemon): keeps helpers ahead of need. */
  readonly longLived?: boolean;
}

/** How long a sandbox has to come up: the launcher, the runtime and the agent. */
const LAUNCH_TIMEOUT_MS = 10_000;

/** The options every container-like backend of a state dir shares. */
export function containerOptions(ctx: BackendContext): ContainerBackendOptions {
  return { agentDir: ctx.agentDir, launcher: nativeBinary("corral-launch"), uidBase: ctx.uidBase, cgroupParent: ctx.cgroupParent, store: ctx.store, longLived: ctx.longLived };
}

/** The container backend of a state dir: crun, its state in `<state>/crun`. */
export function containerBackend(ctx: BackendContext): ContainerBackend {
  const o = containerOptions(ctx);
  return new ContainerBackend(o, new CrunRuntime(path.join(ctx.stateDir, "crun"), realHost, o.launcher));
}

/**
 * Container sandboxes: an OCI runtime (crun; runsc for gVisor) with user,
 * pid, mount, ipc, uts, net and cgroup namespaces, cgroup limits, seccomp,
 * and an overlayfs root over the template's shared read-only layers.
 */
export class ContainerBackend implements SandboxBackend {
  readonly kind: OciRuntime["kind"];
  readonly networking: boolean;
  private readonly parts: ContainerParts;
  /** A long-lived process's corral-netjoin server (container-link.ts); a one-shot one spawns it per join. */
  private readonly joiner: NetJoiner | undefined;

  constructor(
    private readonly o: ContainerBackendOptions,
    readonly runtime: OciRuntime,
    readonly host: Host = realHost,
  ) {
    this.kind = runtime.kind;
    this.networking = runtime.networking;
    this.joiner = o.longLived ? new NetJoiner() : undefined;
    this.parts = { runtime, host, cgroupParent: o.cgroupParent, statuses: new Map() };
  }

  async probe(): Promise<BackendReport> {
    const missing: string[] = [];
    if (!(await this.host.have(this.runtime.program))) missing.push(`${this.runtime.program} is not installed (${this.runtime.install})`);
    if (!fs.existsSync(this.o.launcher)) missing.push(`${this.o.launcher} is missing (npm run build)`);
    if (!fs.existsSync("/proc/self/ns/user")) missing.push("the kernel has no user namespaces");
    const own = missing.length ? { missing: [], notes: [] } : await this.runtime.probe();
    const mode = this.host.cgroupMode;
    const notes = [`cgroups: ${mode}${mode === "hybrid" ? " (the unified mount is detached in the launcher's namespace)" : ""}`, ...own.notes];
    return { kind: this.kind, available: missing.length + own.missing.length === 0, notes: [...missing, ...own.missing, ...notes] };
  }

  /** Closure trees (writable Nix stores' lower layers) no live stack holds any more. */
  async gc(live: readonly (readonly string[])[], graceMs: number): Promise<{ removed: string[]; freedBytes: number }> {
    return { removed: this.o.store ? await gcClosureTrees(this.o.store, live, graceMs) : [], freedBytes: 0 };
  }

  /** Sandboxes the runtime has state for (crun's directory per container, runsc's state files). */
  hostIds(): Promise<string[]> {
    return this.runtime.hostIds();
  }

  /** The host uid that is root in `req`'s sandbox. */
  private uidOf(req: CreateRequest): number {
    return req.uidBase ?? this.o.uidBase;
  }

  create(req: CreateRequest): Promise<SandboxHandle> {
    const p = containerPaths(req.dir);
    return createOrUndo(this.attach(req.id, req.dir), async () => {
      await fsp.mkdir(p.rootfs, { recursive: true });
      await fsp.mkdir(p.run, { mode: 0o700 });
      if (req.spec.lifetime.mode === "persistent") await makeDiskImage(p.diskImage, req.spec.resources.disk, (c, a) => this.host.run(c, a));
      if (req.net && !req.net.container) throw new BackendError(`container ${req.id}: its network attachment is not a container's`);
      await this.writeConfig(req);
      await this.launch(req);
    });
  }

  /** A stopped persistent sandbox's bundle for a new spec: its upper dir (its disk) stays. */
  async reconfigure(req: CreateRequest): Promise<void> {
    // Before the new spec is saved: a smaller disk is refused (start grows a larger one).
    checkDiskNotShrunk(containerPaths(req.dir).diskImage, req.spec.resources.disk);
    return this.writeConfig(req);
  }

  /** The bundle's config.json (and the share stages it names) for `req`. */
  private async writeConfig(req: CreateRequest): Promise<void> {
    const p = containerPaths(req.dir);
    const shares = req.shares ?? [];
    await makeShareStages(req.dir, shares);
    // A writable store: an overlay corral-launch mounts on <dir>/nix-store (launchArgs), bound read-write.
    const writable = req.nixStore?.writable === true;
    if (writable) await fsp.mkdir(path.join(req.dir, "nix-store"), { recursive: true, mode: 0o755 });
    const net = req.net && { hosts: p.hosts, resolv: p.resolv };
    if (req.net) {
      await fsp.writeFile(p.net, JSON.stringify(req.net));
      await fsp.writeFile(p.hosts, hostsFile(req.net.address, req.hostname), { mode: 0o644 });
      await fsp.writeFile(p.resolv, resolvConf(req.net.dns), { mode: 0o644 });
    }
    const config = ociConfig({
      id: req.id,
      spec: req.spec,
      hostname: req.hostname,
      // A tmpfs copy of the store's agent directory (launchArgs --copy-tmpfs): no host path in the sandbox's mountinfo.
      agentDir: path.join(req.dir, "agent"),
      runDir: p.run,
      uidBase: this.uidOf(req),
      cgroupPath: `${this.o.cgroupParent}/${req.id}`,
      nixStore: writable ? { dir: path.join(req.dir, "nix-store"), paths: [], writable: true } : req.nixStore,
      shares: shares.map((s, i) => ({ stage: shareStage(req.dir, i), target: s.target, readOnly: s.readOnly })),
      net,
      ...this.runtime.configOptions(req.spec),
    });
    await fsp.writeFile(p.config, JSON.stringify(config));
  }

  /**
   * Starts a stopped persistent sandbox again from its directory: same
   * bundle, same writable layer on disk.
   */
  async start(req: CreateRequest): Promise<SandboxHandle> {
    return startAgain(this.attach(req.id, req.dir), async () => {
      // The last run's socket: crun's agent unlinks it before it binds;
      // under runsc, where the gofer made it on the host, that unlink does
      // not free the name (bind: "Address in use"), so the host removes it.
      await fsp.rm(containerPaths(req.dir).socket, { force: true });
      // Its spec's disk grew while it was stopped (a declared change): the image grows with it, unmounted.
      await growDiskImage(containerPaths(req.dir).diskImage, req.spec.resources.disk, (c, a, o) => this.host.run(c, a, o));
      await this.launch(req);
    });
  }

  /** The arguments of corral-launch: the tmpfs and overlay in its own mount namespace, then the runtime's run. */
  async launchArgs(req: CreateRequest): Promise<string[]> {
    const p = containerPaths(req.dir);
    const uid = this.uidOf(req);
    const persistent = req.spec.lifetime.mode === "persistent";
    // A persistent sandbox's disk is its ext4 image (capped at its size),
    // or, made before there was one, its directory (not capped).
    const image = persistent && fs.existsSync(p.diskImage);
    const base = !persistent ? p.scratch : image ? p.disk : req.dir;
    // First: the runtime's and the init's stdout and stderr into a capped log (LOG_MAX).
    const args: string[] = ["--log", req.dir, path.basename(p.log), String(LOG_MAX)];
    if (this.host.cgroupMode === "hybrid") args.push("--unmount", "/sys/fs/cgroup/unified");
    if (!persistent) {
      await fsp.mkdir(p.scratch, { recursive: true });
      args.push("--tmpfs", p.scratch, String(req.spec.resources.disk));
    } else if (image) {
      await fsp.mkdir(p.disk, { recursive: true });
      args.push("--ext4", p.diskImage, p.disk);
    }
    const upper = path.join(base, "upper");
    const work = path.join(base, "work");
    // overlayfs wants the top layer first.
    const lowers = [...req.layers].reverse().join(":");
    args.push("--owned-dir", upper, String(uid), "--owned-dir", work, String(uid));
    // The sandbox's own range: the shared layers (and shares, which belong
    // to the store's range as VMs' do) are id-mapped onto it
    // (mount_setattr MOUNT_ATTR_IDMAP): nothing copied or chowned per
    // sandbox. Their mount points: a tmpfs in launch's namespace.
    const idmapped = uid !== this.o.uidBase;
    if (idmapped) args.push("--idmap", String(this.o.uidBase), String(uid), String(UID_RANGE), path.join(base, "lowers"));
    for (const [i, s] of (req.shares ?? []).entries()) args.push(...bindShareArgs(req.dir, s, i));
    args.push("--copy-tmpfs", this.o.agentDir, path.join(req.dir, "agent"));
    const nix = req.nixStore;
    if (nix?.writable) {
      // The read-only store (the host's, or a tree of exactly the closure)
      // under the sandbox's own upper: on its disk when persistent, in its
      // tmpfs otherwise. Nothing reaches the host's store.
      if (!nix.hostStore && !this.o.store) throw new BackendError("a writable Nix store needs the backend's store");
      const lower = nix.hostStore ? nix.dir : await ensureClosureTree(this.o.store!, nix.closure);
      const nixUpper = path.join(base, "nix-upper");
      const nixWork = path.join(base, "nix-work");
      args.push("--owned-dir", nixUpper, String(uid), "--owned-dir", nixWork, String(uid));
      args.push("--overlay", lower, nixUpper, nixWork, path.join(req.dir, "nix-store"));
    }
    args.push(idmapped ? "--idmapped-overlay" : "--overlay", lowers, upper, work, p.rootfs, "--");
    args.push(...(await this.runtime.runArgs(req.id, p.bundle)));
    return args;
  }

  /** corral-launch → the runtime's run --detach; resolves once the agent is ready. */
  private async launch(req: CreateRequest): Promise<void> {
    const p = containerPaths(req.dir);
    const args = await this.launchArgs(req);
    const log = fs.openSync(p.log, "a", 0o600);
    const t0 = Date.now();
    try {
      // The agent binds its socket in run/ (/run/corral inside), so the
      // sandbox's root owns it until the agent is up; then it is the
      // host's root's, 0755, which the sandbox cannot write: it adds no
      // file there (issue 18: 60 MiB written to /run/corral, a host
      // directory outside the disk cap, from a 20 MiB sandbox) and cannot
      // replace the socket.
      const uid = this.uidOf(req);
      await this.host.chown(p.run, uid, uid);
      await this.host.launch(this.o.launcher, args, { logFd: log, timeoutMs: LAUNCH_TIMEOUT_MS, readyPipe: this.runtime.readyPipe });
      this.parts.statuses.delete(req.id);
      await this.runtime.started(req.id, req.dir, Math.max(1000, LAUNCH_TIMEOUT_MS - (Date.now() - t0)));
      await this.host.chown(p.run, 0, 0);
      await fsp.chmod(p.run, 0o755);
      const net = await readAttachment(p.net);
      if (net) {
        const init = this.runtime.init(req.id, req.dir);
        if (!init) throw new Error("its init is gone");
        await joinNamespace(net, init, this.joiner);
      }
    } catch (e) {
      // The log is written by corral-launch's drainer: what the runtime said as it failed may be a moment behind.
      let tail = await logTail(p.log, 3);
      for (let i = 0; i < 25 && !tail; i++) {
        await new Promise((r) => setTimeout(r, 20));
        tail = await logTail(p.log, 3);
      }
      throw new BackendError(`${this.kind} ${req.id} failed to start: ${(e as Error).message}${tail ? `: ${tail}` : ""}`, { cause: e });
    } finally {
      fs.closeSync(log);
    }
  }

  close(): void {
    this.joiner?.close();
  }

  attach(id: string, dir: string): SandboxHandle {
    return new ContainerHandle(id, dir, this.parts);
  }
}
