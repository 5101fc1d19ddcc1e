import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { connectUnixNoFollow } from "../../agent/client.js";
import { BackendError } from "../../core/errors.js";
import type { ResolvedSpec } from "../../core/sandbox-spec.js";
import type { Host } from "../../host/host.js";
import { containerPaths } from "../container/container-handle.js";
import type { InitProcess, OciRuntime, RuntimeConfigOptions } from "../container/oci-runtime.js";
import { gvisorPlatform, type PlatformChoice } from "./platform.js";

/**
 * Host threads per sandbox process under the ptrace platform: each
 * process has its own stub and the sentry threads that drive it. Measured
 * here: 35 host threads for an idle sandbox, 924-969 with 101 processes.
 * The host cgroup's pids limit counts those threads, so it is the spec's
 * pids times this, plus the sentry's own: a sandbox that reaches it ends
 * (the sentry cannot make a thread) rather than failing a fork, but the
 * host stays bounded.
 */
export const HOST_THREADS_PER_PROCESS = 10;
export const SENTRY_THREADS = 64;

/**
 * gVisor's runsc as the OCI runtime of a container sandbox. Its state is
 * `<root>/<id>_sandbox:<id>.state` (and `.lock`); that records the
 * sandbox process (the sentry), whose pid and start time corral keeps in
 * `<dir>/runsc-init.json` at start, since runsc records no start time.
 */
export class RunscRuntime implements OciRuntime {
  readonly kind = "gvisor" as const;
  readonly install = "apt-get install runsc";
  readonly readyPipe = false;
  /**
   * Not with this runsc (Debian's, 2022-12); network "nat" is refused for
   * gvisor with the field path. Both ways in were tried with a namespace
   * corral made, eth0 set up in it:
   * - --network=sandbox (gVisor's netstack) refuses to start, "cannot run
   *   with network enabled in root network namespace": it takes
   *   /proc/sys/net/core/rmem_default existing for the root namespace,
   *   and on this kernel (6.x) every namespace has that file. Masking it
   *   in the launcher's mount namespace would obstruct /proc, and the
   *   sandbox then cannot mount its own procfs.
   * - --network=host under nsenter works by hand, but with a user
   *   namespace in config.json runsc then runs the sandbox in it with the
   *   container's capabilities (--apply-caps), and its chroot setup fails
   *   (EPERM converting mounts). Without one, the gofer would write the
   *   sandbox's files as the host's root.
   * A runsc whose probe compares namespaces instead would take the first.
   */
  readonly networking = false;
  private readonly inits = new Map<string, InitProcess>();
  private platform: Promise<PlatformChoice> | undefined;

  constructor(
    readonly root: string,
    private readonly host: Host,
    readonly program = "runsc",
  ) {}

  configOptions(spec: ResolvedSpec): RuntimeConfigOptions {
    return { readyFd: false, pidsLimit: spec.resources.pids * HOST_THREADS_PER_PROCESS + SENTRY_THREADS };
  }

  private choice(): Promise<PlatformChoice> {
    return (this.platform ??= gvisorPlatform(this.host, this.program));
  }

  /**
   * --host-uds=create: the agent's socket, bound inside, becomes a socket on
   * the host (the gofer makes it) that the host connects to as to crun's;
   * "create" only, so the sandbox cannot connect to host sockets.
   * --overlay2=none: writes go through the gofer to corral's overlay (the
   * upper dir a persistent sandbox keeps, the tmpfs an ephemeral one's is
   * capped by), not to a memory overlay of the sentry's own.
   * --oci-seccomp: config.json's seccomp profile is applied inside the
   * sentry (runsc ignores it otherwise); no measurable cost per exec here.
   */
  async runArgs(id: string, bundle: string): Promise<string[]> {
    await fsp.mkdir(this.root, { recursive: true, mode: 0o711 });
    const { platform } = await this.choice();
    const flags = ["--network=none", "--host-uds=create", "--overlay2=none", "--oci-seccomp", `--platform=${platform}`];
    return [this.program, "--root", this.root, ...flags, "run", "--detach", "--bundle", bundle, id];
  }

  private stateFile(id: string, ext = "state"): string {
    return path.join(this.root, `${id}_sandbox:${id}.${ext}`);
  }

  private initFile(dir: string): string {
    return path.join(dir, "runsc-init.json");
  }

  /**
   * Records the sentry, then waits for the agent: runsc passes the
   * launcher no fd 3 to say "ready" on, so its socket is tried (every
   * 0.5-20 ms, as AgentClient.connect does) until it answers, failing fast
   * once the sentry is gone.
   */
  async started(id: string, dir: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let pid: unknown;
    try {
      pid = (JSON.parse(fs.readFileSync(this.stateFile(id), "utf8")) as { sandbox?: { pid?: unknown } }).sandbox?.pid;
    } catch (e) {
      throw new BackendError(`runsc left no state for ${id}: ${(e as Error).message}`, { cause: e });
    }
    const st = typeof pid === "number" ? this.host.procStat(pid) : undefined;
    if (typeof pid !== "number" || !st) throw new BackendError("the sandbox exited before its agent was ready");
    const init: InitProcess = { pid, startTime: st.startTime };
    await fsp.writeFile(this.initFile(dir), JSON.stringify(init));
    this.inits.set(id, init);
    const socket = containerPaths(dir).socket;
    for (let delay = 0.5; ; delay = Math.min(delay * 2, 20)) {
      try {
        (await connectUnixNoFollow(socket)).destroy();
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "ENOENT" && code !== "ECONNREFUSED") throw e;
      }
      const now = this.host.procStat(pid);
      if (!now || now.startTime !== st.startTime || now.state === "Z") throw new BackendError("the sandbox exited before its agent was ready");
      if (Date.now() >= deadline) throw new BackendError(`the sandbox's agent was not ready within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  init(id: string, dir: string): InitProcess | undefined {
    const cached = this.inits.get(id);
    if (cached) return cached;
    try {
      const r = JSON.parse(fs.readFileSync(this.initFile(dir), "utf8")) as { pid?: unknown; startTime?: unknown };
      if (typeof r.pid !== "number" || r.pid <= 1 || typeof r.startTime !== "number") return undefined;
      const init = { pid: r.pid, startTime: r.startTime };
      this.inits.set(id, init);
      return init;
    } catch {
      return undefined;
    }
  }

  hasState(id: string): boolean {
    return fs.existsSync(this.stateFile(id));
  }

  async removeState(id: string, dir: string, ask: boolean): Promise<void> {
    if (ask) await this.host.run(this.program, ["--root", this.root, "delete", "--force", id], { allowFailure: true });
    for (const f of [this.stateFile(id), this.stateFile(id, "lock"), this.initFile(dir)]) await fsp.rm(f, { force: true });
    this.inits.delete(id);
  }

  async hostIds(): Promise<string[]> {
    await fsp.mkdir(this.root, { recursive: true, mode: 0o711 });
    const ids = new Set<string>();
    for (const f of await fsp.readdir(this.root)) {
      const m = /^(.+)_sandbox:(.+)\.(state|lock)$/.exec(f);
      if (m && m[1] === m[2]) ids.add(m[1]!);
    }
    return [...ids];
  }

  /**
   * `runsc exec --cap CAP_SYS_ADMIN ID hostname NAME`: the sentry keeps its
   * own UTS namespace (the host's setns of corral-launch --set-hostname
   * would rename nothing inside), and gVisor refuses writes to
   * /proc/sys/kernel/hostname (EIO). So the template needs a `hostname`
   * program (busybox and Debian have one). A claim renames a pooled
   * sandbox before its new tenant's first command, so the program run with
   * that capability is still the template's.
   */
  async rename(id: string, _init: unknown, hostname: string): Promise<void> {
    await this.host.run(this.program, ["--root", this.root, "exec", "--cap", "CAP_SYS_ADMIN", id, "hostname", hostname], { timeoutMs: 5000 });
  }

  /**
   * Processes in the sandbox, as runsc lists them (`runsc ps`, ~30 ms
   * here): the host cgroup holds the sentry's threads
   * (HOST_THREADS_PER_PROCESS), and the agent cannot list /proc here (its
   * file operations need openat2, which gVisor 2022-12 lacks).
   */
  async processCount(id: string): Promise<number> {
    const r = await this.host.run(this.program, ["--root", this.root, "ps", "--format", "json", id]);
    const pids = JSON.parse(r.stdout) as unknown;
    if (!Array.isArray(pids)) throw new BackendError(`runsc ps gave ${r.stdout.slice(0, 80)}`);
    return pids.length;
  }

  async probe(): Promise<{ missing: string[]; notes: string[] }> {
    const c = await this.choice();
    return { missing: [], notes: [`platform: ${c.platform} (${c.detail})`] };
  }
}
