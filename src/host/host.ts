import fsp from "node:fs/promises";
import { cgroupMode, ContainerCgroup, listChildren, type CgroupMode } from "./cgroups.js";
import { haveCommand, runCommand, type CommandOptions, type CommandResult } from "./command.js";
import { killQuietly, pidAlive, procStat, type ProcStat } from "./process.js";
import { spawnUntilReady, type ReadyLaunch } from "./spawn-ready.js";

export type { ReadyLaunch } from "./spawn-ready.js";

/** What a backend reads and removes of one sandbox's cgroup (ContainerCgroup on the real host). */
export interface SandboxCgroup {
  /** Every directory it occupies on the host (none once removed). */
  dirs(): string[];
  /** Pids of the processes in it. */
  processes(): Promise<number[]>;
  /** Removes its directories (retrying while the kernel tears killed tasks down). */
  remove(): Promise<void>;
  cpuNanos(): Promise<number>;
  memoryBytes(): Promise<number>;
  pids(): Promise<number>;
  oomKills(): Promise<number>;
}

/**
 * The host effects of the container backends and the runtime, behind one
 * narrow seam: spawning programs, signals, /proc reads and the cgroup
 * filesystem. `realHost` does them; test/helpers/fake-host.ts stands in for
 * it in unit tests of the logic above (what is killed, in which order, what
 * status a crun record and a /proc start time give), which then need no
 * root. The real thing is tested for real in the functional suites.
 */
export interface Host {
  /** How this host's cgroups are mounted (v2, hybrid or v1). */
  readonly cgroupMode: CgroupMode;
  /** The cgroup at `rel` below each hierarchy root, e.g. "corral/abc". */
  cgroup(rel: string): SandboxCgroup;
  /** Names of the cgroups below `rel`. */
  cgroupChildren(rel: string): Promise<string[]>;
  /** /proc/PID/stat's state and start time; undefined once the pid is gone. */
  procStat(pid: number): ProcStat | undefined;
  /** Whether a process exists (a zombie counts). */
  pidAlive(pid: number): boolean;
  /** Sends a signal (SIGKILL by default), ignoring a process already gone. */
  kill(pid: number, signal?: NodeJS.Signals): void;
  /** Runs a program to its end (see runCommand). */
  run(cmd: string, args: readonly string[], opts?: CommandOptions): Promise<CommandResult>;
  /** Whether a program is on PATH. */
  have(cmd: string): Promise<boolean>;
  /** Runs a sandbox's launcher until it and the sandbox are up (see spawnUntilReady). */
  launch(cmd: string, args: readonly string[], o: ReadyLaunch): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
}

let mode: CgroupMode | undefined;

/** The host itself. */
export const realHost: Host = {
  get cgroupMode(): CgroupMode {
    return (mode ??= cgroupMode());
  },
  cgroup: (rel) => new ContainerCgroup(realHost.cgroupMode, rel),
  cgroupChildren: (rel) => listChildren(realHost.cgroupMode, rel),
  procStat,
  pidAlive,
  kill: (pid, signal) => killQuietly(pid, signal),
  run: (cmd, args, opts) => runCommand(cmd, args, opts),
  have: haveCommand,
  launch: spawnUntilReady,
  chown: (p, uid, gid) => fsp.chown(p, uid, gid),
};
