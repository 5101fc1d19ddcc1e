import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

const CGROUP_ROOT = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC = 0x63677270;

export type CgroupMode = "v2" | "hybrid" | "v1";

/**
 * How this host mounts cgroups. Hybrid (v1 controllers plus a cgroup2 mount
 * at /sys/fs/cgroup/unified) is what crun 1.8 refuses; see corral-launch.
 */
export function cgroupMode(): CgroupMode {
  if (fs.statfsSync(CGROUP_ROOT).type === CGROUP2_SUPER_MAGIC) return "v2";
  try {
    if (fs.statfsSync(path.join(CGROUP_ROOT, "unified")).type === CGROUP2_SUPER_MAGIC) return "hybrid";
  } catch {
    /* no unified mount */
  }
  return "v1";
}

const V1_CONTROLLERS = ["memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer", "systemd"];
/** The v1 hierarchies enter() puts a process in: what stats() reads. */
const ENTERED_V1 = ["memory", "pids", "cpu", "cpuacct"];

/**
 * Reads and removes the cgroups of one container. `rel` is the cgroup path
 * below the hierarchy root, e.g. `corral/abc123`.
 */
export class ContainerCgroup {
  constructor(
    readonly mode: CgroupMode,
    readonly rel: string,
  ) {}

  /** Every directory this container's cgroup occupies on the host. */
  dirs(): string[] {
    if (this.mode === "v2") return [path.join(CGROUP_ROOT, this.rel)];
    return V1_CONTROLLERS.map((c) => path.join(CGROUP_ROOT, c, this.rel)).filter((d) => fs.existsSync(d));
  }

  private file(controller: string, name: string): string {
    return this.mode === "v2" ? path.join(CGROUP_ROOT, this.rel, name) : path.join(CGROUP_ROOT, controller, this.rel, name);
  }

  /**
   * Creates the cgroup (for sandboxes that no OCI runtime sets up: VMs) and
   * moves `pid` into it; on v1, in the memory, pids and cpu/cpuacct
   * hierarchies, which is what stats() reads.
   */
  async enter(pid: number): Promise<void> {
    const ctrls = this.mode === "v2" ? [""] : ENTERED_V1;
    for (const c of ctrls) {
      const d = this.mode === "v2" ? path.join(CGROUP_ROOT, this.rel) : path.join(CGROUP_ROOT, c, this.rel);
      if (this.mode !== "v2" && !fs.existsSync(path.join(CGROUP_ROOT, c))) continue;
      await fsp.mkdir(d, { recursive: true });
      await fsp.writeFile(path.join(d, "cgroup.procs"), String(pid));
    }
  }

  /**
   * Holds the cgroup to `cores` of CPU time (CFS bandwidth: that share of
   * every 100 ms), for sandboxes no OCI runtime sets up: VMs with a
   * fractional vcpus. On v2 the parent must pass the cpu controller down.
   */
  async limitCpu(cores: number): Promise<void> {
    const period = 100_000;
    const quota = Math.max(1000, Math.round(cores * period));
    if (this.mode === "v2") {
      const parent = path.dirname(path.join(CGROUP_ROOT, this.rel));
      await fsp.writeFile(path.join(parent, "cgroup.subtree_control"), "+cpu").catch(() => {});
      await fsp.writeFile(this.file("cpu", "cpu.max"), `${quota} ${period}`);
      return;
    }
    await fsp.writeFile(this.file("cpu", "cpu.cfs_period_us"), String(period));
    await fsp.writeFile(this.file("cpu", "cpu.cfs_quota_us"), String(quota));
  }

  /** Caps the memory of everything in this cgroup (the host OOM-kills inside it past that). */
  async limitMemory(bytes: number): Promise<void> {
    if (this.mode === "v2") {
      const parent = path.dirname(path.join(CGROUP_ROOT, this.rel));
      await fsp.writeFile(path.join(parent, "cgroup.subtree_control"), "+memory").catch(() => {});
      await fsp.writeFile(this.file("memory", "memory.max"), String(bytes));
      return;
    }
    await fsp.writeFile(this.file("memory", "memory.limit_in_bytes"), String(bytes));
  }

  /**
   * Gives this cgroup the name `rel` (same parent), with what is in it: on
   * v1 hierarchies a rename(2) of each controller's directory, where
   * moving a process in costs the writer an RCU grace period (7-20 ms
   * here). False, with nothing renamed, where it cannot (cgroup2 has no
   * rename; a name already taken).
   */
  async renameTo(rel: string): Promise<boolean> {
    if (this.mode === "v2" || path.dirname(rel) !== path.dirname(this.rel)) return false;
    const done: [string, string][] = [];
    for (const root of this.v1Roots()) {
      const from = path.join(root, this.rel);
      const to = path.join(root, rel);
      try {
        await fsp.rename(from, to);
        done.push([from, to]);
      } catch {
        for (const [f, t] of done.reverse()) await fsp.rename(t, f).catch(() => {});
        return false;
      }
    }
    return true;
  }

  /**
   * Moves `pid` back to each hierarchy's root cgroup and removes this one
   * (empty by then, if pid was all it held). Synchronous: it runs as its
   * process exits, or as the one that started it closes.
   */
  leaveSync(pid: number): void {
    const roots = this.mode === "v2" ? [CGROUP_ROOT] : this.v1Roots();
    for (const root of roots) {
      try {
        fs.writeFileSync(path.join(root, "cgroup.procs"), String(pid));
      } catch {
        /* gone already */
      }
    }
    for (const d of this.dirs()) {
      try {
        fs.rmdirSync(d);
      } catch {
        /* gone already, or still in use */
      }
    }
  }

  /** The v1 hierarchies enter() uses that hold this cgroup, once each (cpu and cpuacct may be one mount). */
  private v1Roots(): string[] {
    const roots = new Map<string, string>();
    for (const c of ENTERED_V1) {
      const root = path.join(CGROUP_ROOT, c);
      try {
        if (fs.existsSync(path.join(root, this.rel))) roots.set(fs.realpathSync(root), root);
      } catch {
        /* not mounted */
      }
    }
    return [...roots.values()];
  }

  /** How many times the kernel's OOM killer killed a process in here. */
  async oomKills(): Promise<number> {
    const f = this.mode === "v2" ? this.file("memory", "memory.events") : this.file("memory", "memory.oom_control");
    // Read synchronously: it is asked twice per exec, and a cgroup file is
    // read in microseconds, where fs.promises costs four thread-pool hops.
    let text = "";
    try {
      text = fs.readFileSync(f, "utf8");
    } catch {
      /* no cgroup (yet, or any more) */
    }
    const m = /^oom_kill (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  }

  async memoryBytes(): Promise<number> {
    const f = this.mode === "v2" ? this.file("memory", "memory.current") : this.file("memory", "memory.usage_in_bytes");
    return readNumber(f);
  }

  async pids(): Promise<number> {
    return readNumber(this.file("pids", "pids.current"));
  }

  /** Times the pids limit refused a fork. */
  async pidsLimitHits(): Promise<number> {
    const text = await fsp.readFile(this.file("pids", "pids.events"), "utf8").catch(() => "");
    const m = /^max (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  }

  async cpuNanos(): Promise<number> {
    if (this.mode === "v2") {
      const text = await fsp.readFile(this.file("cpu", "cpu.stat"), "utf8").catch(() => "");
      const m = /^usage_usec (\d+)$/m.exec(text);
      return m ? Number(m[1]) * 1000 : 0;
    }
    return readNumber(this.file("cpuacct", "cpuacct.usage"));
  }

  /** Pids of processes still in the cgroup. */
  async processes(): Promise<number[]> {
    const f = this.mode === "v2" ? this.file("", "cgroup.procs") : this.file("pids", "cgroup.procs");
    const text = await fsp.readFile(f, "utf8").catch(() => "");
    return text.split("\n").filter(Boolean).map(Number);
  }

  /**
   * Removes the cgroup directories (crun delete normally has). Retries while
   * the kernel still tears down exiting tasks (EBUSY).
   */
  async remove(): Promise<void> {
    for (const d of this.dirs()) {
      for (let attempt = 0; ; attempt++) {
        try {
          await fsp.rmdir(d);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === "ENOENT") break;
          if (code !== "EBUSY" || attempt > 2000) throw e;
          // Killed tasks leave the cgroup within a few ms.
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    }
  }
}

async function readNumber(f: string): Promise<number> {
  const t = await fsp.readFile(f, "utf8").catch(() => "0");
  const n = Number(t.trim());
  return Number.isFinite(n) ? n : 0;
}

/** The cgroups VM spare shims wait in, below the sandboxes' parent (shim.ts). */
export const SPARE_PREFIX = "spare-";

/**
 * Removes the spare cgroups under `parent` that no process is in: a spare
 * shim killed outright leaves its own (an empty one; rmdir refuses the
 * others).
 */
export async function removeSpareCgroups(mode: CgroupMode, parent: string): Promise<void> {
  for (const name of await listChildren(mode, parent)) {
    if (!name.startsWith(SPARE_PREFIX)) continue;
    for (const d of new ContainerCgroup(mode, `${parent}/${name}`).dirs()) await fsp.rmdir(d).catch(() => {});
  }
}

/** Removes a parent cgroup (e.g. `corral-test-x`) when it is empty. */
export async function removeEmptyParent(mode: CgroupMode, rel: string): Promise<void> {
  const dirs = mode === "v2" ? [path.join(CGROUP_ROOT, rel)] : V1_CONTROLLERS.map((c) => path.join(CGROUP_ROOT, c, rel));
  for (const d of dirs) await fsp.rmdir(d).catch(() => {});
}

/** Child cgroup names under `rel` (the memory hierarchy on v1). */
export async function listChildren(mode: CgroupMode, rel: string): Promise<string[]> {
  const dir = mode === "v2" ? path.join(CGROUP_ROOT, rel) : path.join(CGROUP_ROOT, "memory", rel);
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}
