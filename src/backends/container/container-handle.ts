import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { AgentClient } from "../../agent/client.js";
import { BackendError } from "../../core/errors.js";
import { tailOfFiles } from "../../host/log-tail.js";
import { copyUpperFromImage } from "../disk-image.js";
import type { Host } from "../../host/host.js";
import type { ProcStat } from "../../host/process.js";
import type { SandboxHandle, SandboxStatus, UsageSample } from "../backend.js";
import { cgroupUsage } from "../cgroup-usage.js";
import type { InitProcess, OciRuntime } from "./oci-runtime.js";
import type { NetAttachment } from "../../network/networks.js";
import { hostsFile } from "../../network/guest-files.js";

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
    /** A persistent sandbox's disk: an ext4 image of `resources.disk` bytes, mounted on `disk` in the launcher's namespace. */
    diskImage: path.join(dir, "disk.img"),
    disk: path.join(dir, "disk"),
    log: path.join(dir, "container.log"),
    /** The log's older half (corral-launch --log rotates into it). */
    oldLog: path.join(dir, "container.log.1"),
    /** A networked sandbox's /etc/hosts and /etc/resolv.conf (bind-mounted read-only). */
    hosts: path.join(dir, "hosts"),
    resolv: path.join(dir, "resolv.conf"),
    /** Its NetAttachment, for a start again and a stop. */
    net: path.join(dir, "net.json"),
  };
}

/**
 * What a container's runtime and init print is kept to the last
 * LOG_MAX..2*LOG_MAX bytes on the host (container.log, container.log.1):
 * corral-launch makes their stdout and stderr a pipe and drains it
 * (issue 18: a host file there let `dd of=/proc/1/fd/2` write 200 MiB from
 * a sandbox with a 10 MiB disk).
 */
export const LOG_MAX = 256 * 1024;

/** A networked sandbox's attachment (net.json), or undefined. */
export async function readAttachment(file: string): Promise<NetAttachment | undefined> {
  const text = await fsp.readFile(file, "utf8").catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as NetAttachment);
}

/**
 * Recent status answers: listing sandboxes under load would otherwise read
 * /proc/PID/stat for each of them on every request (a fifth of the
 * daemon's time at 1,500 req/s). A crash shows within this long.
 */
export const STATUS_TTL_MS = 250;

/** What the handles of one container backend share with it. */
export interface ContainerParts {
  readonly runtime: OciRuntime;
  readonly host: Host;
  /** Parent cgroup of every sandbox, e.g. "corral". */
  readonly cgroupParent: string;
  /** Recent status answers by sandbox id (STATUS_TTL_MS). */
  readonly statuses: Map<string, { at: number; status: SandboxStatus }>;
}

export class ContainerHandle implements SandboxHandle {
  private readonly paths: ReturnType<typeof containerPaths>;
  constructor(
    readonly id: string,
    readonly dir: string,
    private readonly p: ContainerParts,
  ) {
    this.paths = containerPaths(dir);
  }

  agent(timeoutMs = 5000): Promise<AgentClient> {
    return AgentClient.connect(this.paths.socket, timeoutMs);
  }

  private cgroup() {
    return this.p.host.cgroup(`${this.p.cgroupParent}/${this.id}`);
  }

  /**
   * From the runtime's record and /proc, without running the runtime
   * (reconcile asks for every sandbox). A dead init left as a zombie (under
   * a pid 1 that does not reap) is not running.
   */
  async status(opts: { fresh?: boolean } = {}): Promise<SandboxStatus> {
    const cached = this.p.statuses.get(this.id);
    if (cached && !opts.fresh && Date.now() - cached.at < STATUS_TTL_MS) return cached.status;
    let status: SandboxStatus;
    const init = this.p.runtime.init(this.id, this.dir);
    if (!init) status = this.p.runtime.hasState(this.id, this.dir) ? "stopped" : "missing";
    else {
      // One read of /proc/PID/stat: the same process (start time) and not a zombie.
      const now = this.p.host.procStat(init.pid);
      status = now && sameProcess(init, now) && now.state !== "Z" && now.state !== "X" ? "running" : "stopped";
    }
    this.p.statuses.set(this.id, { at: Date.now(), status });
    return status;
  }

  stats(): Promise<UsageSample> {
    const { processCount } = this.p.runtime;
    return cgroupUsage(this.cgroup(), processCount?.call(this.p.runtime, this.id));
  }

  oomKills(): Promise<number> {
    return this.cgroup().oomKills();
  }

  async destroy(): Promise<void> {
    await this.stop();
    // The log drainer (corral-launch --drain) may write or rotate
    // container.log for a moment after the sandbox has gone, until its pipe
    // ends: a removal racing it fails with ENOTEMPTY (seen once in 2,000
    // churn cycles); fs.rm retries that (20, 40, ... ms).
    await fsp.rm(this.dir, { recursive: true, force: true, maxRetries: 8, retryDelay: 20 });
  }

  /** What the runtime and the sandbox's init printed (their stdout and stderr). */
  logs(maxBytes: number): Promise<string> {
    return tailOfFiles([this.paths.oldLog, this.paths.log], maxBytes);
  }

  /** A persistent container's upper dir lives in its directory; an ephemeral one's in a tmpfs out of the host's reach. */
  hasDisk(): boolean {
    return fs.existsSync(this.paths.diskImage) || fs.existsSync(path.join(this.dir, "upper"));
  }

  /** cp -a keeps overlayfs's whiteouts (0/0 character devices) and opaque-directory xattrs. */
  async exportWritableLayer(dest: string, scratch: string): Promise<void> {
    if (fs.existsSync(this.paths.diskImage)) return copyUpperFromImage(this.paths.diskImage, dest, scratch);
    await this.p.host.run("cp", ["-a", "--", path.join(this.dir, "upper"), dest]);
  }

  async rename(hostname: string): Promise<void> {
    const init = this.liveInit();
    if (!init) throw new BackendError(`container ${this.id} is not running`);
    await this.p.runtime.rename(this.id, init, hostname);
    // Written in place: the sandbox's /etc/hosts is a bind mount of this very inode.
    const net = await readAttachment(this.paths.net);
    if (net) {
      const f = await fsp.open(this.paths.hosts, "r+");
      try {
        await f.truncate(0);
        await f.write(hostsFile(net.address, hostname), 0);
      } finally {
        await f.close();
      }
    }
  }

  /**
   * Ends every process of the sandbox (init first: the kernel then kills
   * the rest of its pid namespace; gVisor's sentry, whose death ends the
   * sandbox), removes its cgroups once empty and the runtime's state,
   * keeping its directory (and a persistent sandbox's disk). Done here
   * rather than by `crun delete --force`, which polls for the processes to
   * go and costs 8-20 ms more; the runtime is still asked when its state
   * exists but no cgroup does (a sandbox that failed half way through the
   * runtime's own setup).
   */
  async stop(): Promise<void> {
    const cg = this.cgroup();
    const init = this.liveInit();
    if (init) this.p.host.kill(init.pid);
    for (const pid of await cg.processes()) this.p.host.kill(pid);
    const hadCgroup = cg.dirs().length > 0;
    await cg.remove();
    await this.p.runtime.removeState(this.id, this.dir, !hadCgroup && this.p.runtime.hasState(this.id, this.dir));
    this.p.statuses.delete(this.id);

  }

  /**
   * The sandbox's init, if that very process still exists: its start time
   * must match what the runtime recorded, so a recycled pid (after a host
   * reboot, say) is never taken for the sandbox and killed.
   */
  private liveInit(): { pid: number; startTime: number } | undefined {
    const init = this.p.runtime.init(this.id, this.dir);
    const now = init && this.p.host.procStat(init.pid);
    return init && now && sameProcess(init, now) ? { pid: init.pid, startTime: now.startTime } : undefined;
  }
}

function sameProcess(init: InitProcess, now: ProcStat): boolean {
  return init.startTime === undefined || now.startTime === init.startTime;
}
