import fs from "node:fs";
import { spawn } from "node:child_process";
import fsp from "node:fs/promises";
import path from "node:path";
import { AgentClient } from "../../agent/client.js";
import { runCommand, haveCommand } from "../../host/command.js";
import { logTail, tailOfFiles } from "../../host/log-tail.js";
import { killQuietly, procStat, type ProcStat } from "../../host/process.js";
import { nativeBinary } from "../../host/native.js";
import { setContainerHostname } from "./hostname.js";
import { BackendError } from "../../core/errors.js";
import { createOrUndo, startAgain, type BackendContext, type BackendReport, type CreateRequest, type SandboxBackend, type SandboxHandle, type SandboxStatus, type UsageSample } from "../backend.js";
import { cgroupMode, ContainerCgroup, type CgroupMode } from "../../host/cgroups.js";
import { ociConfig } from "./oci-config.js";

export interface ContainerBackendOptions {
  /** crun's state directory (its --root). */
  readonly crunRoot: string;
  /** Directory (in the store) holding corral-agent; mounted into sandboxes. */
  readonly agentDir: string;
  /** Path of the corral-launch binary on the host. */
  readonly launcher: string;
  readonly uidBase: number;
  /** Parent cgroup of every sandbox, e.g. "corral". */
  readonly cgroupParent: string;
  readonly runtime?: string;
}

/** The container backend of a state dir: crun's state in `<state>/crun`. */
export function containerBackend(ctx: BackendContext): ContainerBackend {
  return new ContainerBackend({
    crunRoot: path.join(ctx.stateDir, "crun"),
    agentDir: ctx.agentDir,
    launcher: nativeBinary("corral-launch"),
    uidBase: ctx.uidBase,
    cgroupParent: ctx.cgroupParent,
  });
}

/**
 * Per-sandbox paths, all under the sandbox's directory, which is also the
 * OCI bundle (config.json + rootfs/): one directory block fewer per
 * sandbox, which counts at a thousand sandboxes.
 */
export function containerPaths(dir: string) {
  return {
    bundle: dir,
    rootfs: path.join(dir, "rootfs"),
    config: path.join(dir, "config.json"),
    run: path.join(dir, "run"),
    socket: path.join(dir, "run", "agent.sock"),
    scratch: path.join(dir, "scratch"),
    log: path.join(dir, "container.log"),
  };
}

/**
 * Container sandboxes: crun with user, pid, mount, ipc, uts, net and cgroup
 * namespaces, cgroup limits, seccomp, and an overlayfs root over the
 * template's shared read-only layers.
 */
export class ContainerBackend implements SandboxBackend {
  readonly kind = "container" as const;
  readonly cgroupMode: CgroupMode;
  private readonly runtime: string;

  constructor(private readonly o: ContainerBackendOptions) {
    this.cgroupMode = cgroupMode();
    this.runtime = o.runtime ?? "crun";
  }

  async probe(): Promise<BackendReport> {
    const notes: string[] = [];
    if (!(await haveCommand(this.runtime))) notes.push(`${this.runtime} is not installed (apt-get install crun)`);
    if (!fs.existsSync(this.o.launcher)) notes.push(`${this.o.launcher} is missing (npm run build)`);
    if (!fs.existsSync("/proc/self/ns/user")) notes.push("the kernel has no user namespaces");
    notes.push(`cgroups: ${this.cgroupMode}${this.cgroupMode === "hybrid" ? " (the unified mount is detached in the launcher's namespace)" : ""}`);
    return { kind: "container", available: notes.length === 1, notes };
  }

  cgroupFor(id: string): ContainerCgroup {
    return new ContainerCgroup(this.cgroupMode, `${this.o.cgroupParent}/${id}`);
  }

  /** Sandboxes with crun state (crun's own directory per container). */
  async hostIds(): Promise<string[]> {
    await fsp.mkdir(this.o.crunRoot, { recursive: true, mode: 0o711 });
    return fsp.readdir(this.o.crunRoot);
  }

  create(req: CreateRequest): Promise<SandboxHandle> {
    const p = containerPaths(req.dir);
    const uid = this.o.uidBase;
    return createOrUndo(this.attach(req.id, req.dir), async () => {
      await fsp.mkdir(p.rootfs, { recursive: true });
      await fsp.mkdir(p.run, { mode: 0o700 });
      await fsp.chown(p.run, uid, uid);
      const config = ociConfig({
        id: req.id,
        spec: req.spec,
        hostname: req.hostname,
        agentDir: this.o.agentDir,
        runDir: p.run,
        uidBase: uid,
        cgroupPath: `${this.o.cgroupParent}/${req.id}`,
        nixStore: req.nixStore,
      });
      await fsp.writeFile(p.config, JSON.stringify(config));
      await this.launch(req);
    });
  }

  /**
   * Starts a stopped persistent sandbox again from its directory: same
   * bundle, same writable layer on disk.
   */
  async start(req: CreateRequest): Promise<SandboxHandle> {
    return startAgain(this.attach(req.id, req.dir), () => this.launch(req));
  }

  /** corral-launch → crun run --detach; resolves once the agent is ready. */
  private async launch(req: CreateRequest): Promise<void> {
    const p = containerPaths(req.dir);
    const uid = this.o.uidBase;
    const persistent = req.spec.lifetime.mode === "persistent";
    const base = persistent ? req.dir : p.scratch;
    const args: string[] = [];
    if (this.cgroupMode === "hybrid") args.push("--unmount", "/sys/fs/cgroup/unified");
    if (!persistent) {
      await fsp.mkdir(p.scratch, { recursive: true });
      args.push("--tmpfs", p.scratch, String(req.spec.resources.disk));
    }
    const upper = path.join(base, "upper");
    const work = path.join(base, "work");
    // overlayfs wants the top layer first.
    const lowers = [...req.layers].reverse().join(":");
    args.push("--owned-dir", upper, String(uid), "--owned-dir", work, String(uid));
    args.push("--overlay", lowers, upper, work, p.rootfs, "--");
    args.push(this.runtime, "--root", this.o.crunRoot, "--cgroup-manager=cgroupfs", "run", "--detach", "--preserve-fds=1");
    args.push("--bundle", p.bundle, req.id);

    const log = fs.openSync(p.log, "a", 0o600);
    try {
      await launchAndWaitReady(this.o.launcher, args, log, 10_000);
      const stateDir = path.join(this.o.crunRoot, req.id);
      statusCache.delete(stateDir);
      // Read crun's record now, so a claim or a list does not.
      initCache.delete(stateDir);
      await readInit(stateDir);
    } catch (e) {
      const tail = await logTail(p.log, 3);
      throw new BackendError(`container ${req.id} failed to start: ${(e as Error).message}${tail ? `: ${tail}` : ""}`, { cause: e });
    } finally {
      fs.closeSync(log);
    }
  }

  attach(id: string, dir: string): SandboxHandle {
    return new ContainerHandle(id, dir, this, this.o);
  }
}

/**
 * Runs the launcher with stdout/stderr on `logFd` (the container inherits
 * them) and a pipe on fd 3 that reaches the agent; resolves when crun has
 * exited successfully and the agent has said "ready" on the pipe. The pipe
 * closing without it means the container died on the way up.
 */
function launchAndWaitReady(cmd: string, args: string[], logFd: number, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ["ignore", logFd, logFd, "pipe"] });
    const ready = c.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    let exited = false;
    let isReady = false;
    let settled = false;
    const finish = (e?: Error) => {
      if (settled) return;
      if (!e && !(exited && isReady)) return;
      settled = true;
      clearTimeout(timer);
      ready.destroy();
      if (e) reject(e);
      else resolve();
    };
    const timer = setTimeout(() => finish(new BackendError(`the sandbox's agent was not ready within ${timeoutMs} ms`)), timeoutMs);
    let text = "";
    ready.on("data", (d: Buffer) => {
      text += d.toString();
      if (text.includes("ready\n")) {
        isReady = true;
        finish();
      }
    });
    ready.on("end", () => {
      if (!isReady) finish(new BackendError("the sandbox exited before its agent was ready"));
    });
    ready.on("error", () => {});
    c.on("error", (e) => finish(new BackendError(`cannot run ${cmd}: ${e.message}`, { cause: e })));
    c.on("exit", (code, signal) => {
      exited = true;
      if (code === 0) finish();
      else finish(new BackendError(`${cmd} exited with ${signal ?? code}`));
    });
  });
}

export class ContainerHandle implements SandboxHandle {
  private readonly paths: ReturnType<typeof containerPaths>;
  constructor(
    readonly id: string,
    readonly dir: string,
    private readonly backend: ContainerBackend,
    private readonly o: ContainerBackendOptions,
  ) {
    this.paths = containerPaths(dir);
  }

  agent(timeoutMs = 5000): Promise<AgentClient> {
    return AgentClient.connect(this.paths.socket, timeoutMs);
  }

  private crun(args: string[], allowFailure = true) {
    return runCommand(this.o.runtime ?? "crun", ["--root", this.o.crunRoot, ...args], { allowFailure });
  }

  /**
   * From crun's state file and /proc, without running crun (reconcile asks
   * for every sandbox). A dead init left as a zombie (under a pid 1 that does
   * not reap) is not running.
   */
  async status(): Promise<SandboxStatus> {
    const stateDir = path.join(this.o.crunRoot, this.id);
    const cached = statusCache.get(stateDir);
    if (cached && Date.now() - cached.at < STATUS_TTL_MS) return cached.status;
    let status: SandboxStatus;
    const init = await readInit(stateDir);
    if (!init) status = fs.existsSync(stateDir) ? "stopped" : "missing";
    else {
      // One read of /proc/PID/stat: the same process (start time) and not a zombie.
      const now = procStat(init.pid);
      status = now && sameProcess(init, now) && now.state !== "Z" && now.state !== "X" ? "running" : "stopped";
    }
    statusCache.set(stateDir, { at: Date.now(), status });
    return status;
  }

  async stats(): Promise<UsageSample> {
    const cg = this.backend.cgroupFor(this.id);
    const [cpuNanos, memoryBytes, pids, oomKills] = await Promise.all([cg.cpuNanos(), cg.memoryBytes(), cg.pids(), cg.oomKills()]);
    return { cpuNanos, memoryBytes, pids, oomKills };
  }

  oomKills(): Promise<number> {
    return this.backend.cgroupFor(this.id).oomKills();
  }

  async destroy(): Promise<void> {
    await this.stop();
    await fsp.rm(this.dir, { recursive: true, force: true });
  }

  /** What crun and the container's init printed (its stdout and stderr). */
  logs(maxBytes: number): Promise<string> {
    return tailOfFiles([this.paths.log], maxBytes);
  }

  /** A persistent container's upper dir lives in its directory; an ephemeral one's in a tmpfs out of the host's reach. */
  hasDisk(): boolean {
    return fs.existsSync(path.join(this.dir, "upper"));
  }

  /** cp -a keeps overlayfs's whiteouts (0/0 character devices) and opaque-directory xattrs. */
  async exportWritableLayer(dest: string): Promise<void> {
    await runCommand("cp", ["-a", "--", path.join(this.dir, "upper"), dest]);
  }

  /**
   * Ends every process of the sandbox (init first: the kernel then kills
   * the rest of its pid namespace), removes its cgroups once empty and
   * crun's state, keeping its directory (and a persistent sandbox's disk).
   * Done here rather than by `crun delete --force`, which polls for the
   * processes to go and costs 8-20 ms more; crun is still asked when its
   * state exists but no cgroup does (a container that failed half way
   * through crun's own setup).
   */
  async rename(hostname: string): Promise<void> {
    const pid = await readInitPid(path.join(this.o.crunRoot, this.id));
    const started = pid ? procStat(pid)?.startTime : undefined;
    if (!pid || started === undefined) throw new BackendError(`container ${this.id} is not running`);
    await setContainerHostname(this.o.launcher, { pid, startTime: started }, hostname);
  }

  async stop(): Promise<void> {
    const cg = this.backend.cgroupFor(this.id);
    const stateDir = path.join(this.o.crunRoot, this.id);
    const init = await readInitPid(stateDir);
    if (init) killQuietly(init);
    for (const pid of await cg.processes()) killQuietly(pid);
    const hadCgroup = cg.dirs().length > 0;
    await cg.remove();
    if (!hadCgroup && fs.existsSync(stateDir)) await this.crun(["delete", "--force", this.id]);
    await fsp.rm(stateDir, { recursive: true, force: true });
    initCache.delete(stateDir);
    statusCache.delete(stateDir);
  }
}

interface InitProcess {
  readonly pid: number;
  readonly startTime: number | undefined;
}

/** crun's record of a container's init (pid, start time); it never changes while the container lives. */
const initCache = new Map<string, InitProcess>();

/**
 * Recent status answers: listing sandboxes under load would otherwise read
 * /proc/PID/stat for each of them on every request (a fifth of the
 * daemon's time at 1,500 req/s). A crash shows within this long.
 */
const STATUS_TTL_MS = 250;
const statusCache = new Map<string, { at: number; status: SandboxStatus }>();

async function readInit(stateDir: string): Promise<InitProcess | undefined> {
  const cached = initCache.get(stateDir);
  if (cached) return cached;
  try {
    // Synchronous: a small file read on every status (claims, lists), where
    // fs.promises costs four thread-pool hops.
    const st = JSON.parse(fs.readFileSync(path.join(stateDir, "status"), "utf8")) as { pid?: unknown; "process-start-time"?: unknown };
    if (typeof st.pid !== "number" || st.pid <= 1) return undefined;
    const init = { pid: st.pid, startTime: typeof st["process-start-time"] === "number" ? st["process-start-time"] : undefined };
    initCache.set(stateDir, init);
    return init;
  } catch {
    return undefined;
  }
}

/**
 * The container's init pid, if that very process still exists: its start
 * time must match what crun recorded, so a recycled pid (after a host
 * reboot, say) is never taken for the sandbox and killed.
 */
async function readInitPid(stateDir: string): Promise<number | undefined> {
  const init = await readInit(stateDir);
  if (!init) return undefined;
  const now = procStat(init.pid);
  return now && sameProcess(init, now) ? init.pid : undefined;
}

function sameProcess(init: InitProcess, now: ProcStat): boolean {
  return init.startTime === undefined || now.startTime === init.startTime;
}
