import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { AgentClient } from "../../agent/client.js";
import type { ContainerCgroup } from "../../host/cgroups.js";
import { tailOfFiles } from "../../host/log-tail.js";
import { killQuietly, procStat, processRunning } from "../../host/process.js";
import type { SandboxHandle, SandboxStatus, SnapshotSaved, UsageSample } from "../backend.js";
import { cgroupUsage } from "../cgroup-usage.js";
import { shimPaths, type ShimExit } from "./shim-files.js";
import { copyUpperFromImage } from "../disk-image.js";

/** What a VM's handle asks of the backend that made it. */
export interface VmHandleHost {
  cgroupFor(id: string): ContainerCgroup;
  saveNamed(dir: string, snapshotId: string): Promise<SnapshotSaved>;
}

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

/**
 * A microVM sandbox, whichever VMM runs it: everything goes through its
 * shim's files in the sandbox directory (shim-files.ts), its agent socket
 * and its host cgroup.
 */
export class VmHandle implements SandboxHandle {
  private readonly paths: ReturnType<typeof shimPaths>;
  constructor(
    readonly id: string,
    readonly dir: string,
    private readonly backend: VmHandleHost,
  ) {
    this.paths = shimPaths(dir);
  }

  agent(timeoutMs = 5000): Promise<AgentClient> {
    return AgentClient.connect(this.paths.agentSocket, timeoutMs);
  }

  /**
   * Its hostname, and a networked guest's own line in /etc/hosts
   * (guest-net.c wrote "ADDRESS<tab>NAME" at boot), as a container's
   * rename rewrites its hosts file. The guest's agent is its PID 1 with
   * every capability: it writes both itself.
   */
  async rename(hostname: string): Promise<void> {
    const c = await this.agent();
    try {
      const old = (await c.readFileBuffer("/proc/sys/kernel/hostname")).toString().trim();
      await c.writeFile("/proc/sys/kernel/hostname", hostname);
      const hosts = old ? (await c.readFileBuffer("/etc/hosts").catch(() => undefined))?.toString() : undefined;
      if (hosts === undefined) return;
      const lines = hosts.split("\n");
      const own = lines.findIndex((l) => /^[0-9.]+\t/.test(l) && l.slice(l.indexOf("\t") + 1) === old);
      if (own < 0) return;
      lines[own] = `${lines[own]!.slice(0, lines[own]!.indexOf("\t"))}\t${hostname}`;
      await c.writeFile("/etc/hosts", lines.join("\n"));
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
   * CPU and memory are the VMM's (the host cgroup's); processes and OOM
   * kills are the guest's (read through the agent), plus the host cgroup's
   * OOM kills (the VMM itself).
   */
  async stats(): Promise<UsageSample> {
    const [host, guest] = await Promise.all([
      cgroupUsage(this.backend.cgroupFor(this.id)),
      this.withGuest((c) => Promise.all([guestOomKills(c), guestPids(c)])),
    ]);
    return { ...host, pids: guest?.[1] ?? host.pids, oomKills: host.oomKills + (guest?.[0] ?? 0) };
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
   * Asks the shim to end the guest (it syncs first), waits for it, then
   * kills whatever is left in the VM's cgroup and removes it.
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
    const p = this.paths;
    for (const f of [p.agentSocket, p.qmpSocket, p.vsockSocket, p.shimPid, p.vmmPid]) await fsp.rm(f, { force: true });
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

  /** Refused (ConflictError) for a VM whose VMM corral cannot snapshot. */
  snapshot(snapshotId: string): Promise<SnapshotSaved> {
    return this.backend.saveNamed(this.dir, snapshotId);
  }
}
