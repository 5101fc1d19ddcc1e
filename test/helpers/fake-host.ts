import type { CgroupMode } from "../../src/host/cgroups.js";
import type { CommandOptions, CommandResult } from "../../src/host/command.js";
import type { Host, ReadyLaunch, SandboxCgroup } from "../../src/host/host.js";
import type { ProcStat } from "../../src/host/process.js";

/** A cgroup of the fake host: its processes and counters, set by the test. */
export class FakeCgroup implements SandboxCgroup {
  exists = false;
  procs: number[] = [];
  cpu = 0;
  memory = 0;
  pidCount = 0;
  ooms = 0;

  constructor(
    readonly rel: string,
    private readonly host: FakeHost,
  ) {}

  dirs(): string[] {
    return this.exists ? [`/fake-cgroup/${this.rel}`] : [];
  }
  async processes(): Promise<number[]> {
    return this.procs.filter((p) => this.host.procs.has(p));
  }
  async remove(): Promise<void> {
    if (this.exists) this.host.log.push(`rmdir ${this.rel}`);
    this.exists = false;
  }
  async cpuNanos(): Promise<number> {
    return this.cpu;
  }
  async memoryBytes(): Promise<number> {
    return this.memory;
  }
  async pids(): Promise<number> {
    return this.pidCount;
  }
  async oomKills(): Promise<number> {
    return this.ooms;
  }
}

/**
 * An in-memory host for unit tests of the logic above the Host seam:
 * processes are entries of `procs` (a kill removes one), cgroups are
 * FakeCgroups, and every effect is appended to `log` in order ("kill PID
 * SIGNAL", "run CMD ARGS...", "launch CMD ARGS...", "rmdir CGROUP").
 */
export class FakeHost implements Host {
  cgroupMode: CgroupMode = "v2";
  readonly procs = new Map<number, ProcStat>();
  readonly groups = new Map<string, FakeCgroup>();
  readonly children = new Map<string, string[]>();
  readonly log: string[] = [];
  /** Answers run(); the default succeeds with no output. */
  onRun: (cmd: string, args: readonly string[], opts: CommandOptions) => Partial<CommandResult> = () => ({});
  /** Does launch()'s work (the default succeeds). */
  onLaunch: (cmd: string, args: readonly string[], o: ReadyLaunch) => Promise<void> = async () => {};
  readonly programs = new Set<string>(["crun", "runsc", "cp"]);

  /** A live process with this start time (state S). */
  spawnProcess(pid: number, startTime: number, state = "S"): void {
    this.procs.set(pid, { state, startTime });
  }

  cgroup(rel: string): FakeCgroup {
    let g = this.groups.get(rel);
    if (!g) this.groups.set(rel, (g = new FakeCgroup(rel, this)));
    return g;
  }
  async cgroupChildren(rel: string): Promise<string[]> {
    return this.children.get(rel) ?? [];
  }
  procStat(pid: number): ProcStat | undefined {
    return this.procs.get(pid);
  }
  pidAlive(pid: number): boolean {
    return this.procs.has(pid);
  }
  kill(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
    this.log.push(`kill ${pid} ${signal}`);
    if (signal === "SIGKILL") this.procs.delete(pid);
  }
  async run(cmd: string, args: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
    this.log.push(`run ${[cmd, ...args].join(" ")}`);
    const r = { code: 0, stdout: "", stderr: "", ...this.onRun(cmd, args, opts) };
    if (r.code !== 0 && !opts.allowFailure) throw new Error(`${cmd} failed (exit ${r.code}): ${r.stderr}`);
    return r;
  }
  async have(cmd: string): Promise<boolean> {
    return this.programs.has(cmd);
  }
  async launch(cmd: string, args: readonly string[], o: ReadyLaunch): Promise<void> {
    this.log.push(`launch ${[cmd, ...args].join(" ")}`);
    await this.onLaunch(cmd, args, o);
  }
  async chown(): Promise<void> {}
}
