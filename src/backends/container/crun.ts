import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { ResolvedSpec } from "../../core/sandbox-spec.js";
import type { Host } from "../../host/host.js";
import { setContainerHostname } from "./hostname.js";
import type { InitProcess, OciRuntime, RuntimeConfigOptions } from "./oci-runtime.js";

/**
 * crun: the container backend's runtime. Its state is one directory per
 * sandbox under `<state>/crun`, whose `status` file records the init's pid
 * and start time.
 */
export class CrunRuntime implements OciRuntime {
  readonly kind = "container" as const;
  readonly install = "apt-get install crun";
  readonly readyPipe = true;
  readonly networking = true;
  /** crun's record of each container's init (pid, start time); it never changes while the container lives. */
  private readonly inits = new Map<string, InitProcess>();

  constructor(
    readonly root: string,
    private readonly host: Host,
    /** corral-launch, which renames a container (--set-hostname). */
    private readonly launcher: string,
    readonly program = "crun",
  ) {}

  configOptions(spec: ResolvedSpec): RuntimeConfigOptions {
    return { readyFd: true, pidsLimit: spec.resources.pids };
  }

  async runArgs(id: string, bundle: string): Promise<string[]> {
    await fsp.mkdir(this.root, { recursive: true, mode: 0o711 });
    return [this.program, "--root", this.root, "--cgroup-manager=cgroupfs", "run", "--detach", "--preserve-fds=1", "--bundle", bundle, id];
  }

  /** Reads crun's record now, so a claim or a list does not. */
  async started(id: string): Promise<void> {
    this.inits.delete(id);
    this.init(id);
  }

  init(id: string): InitProcess | undefined {
    const cached = this.inits.get(id);
    if (cached) return cached;
    try {
      // Synchronous: a small file read on every status (claims, lists), where
      // fs.promises costs four thread-pool hops.
      const st = JSON.parse(fs.readFileSync(path.join(this.root, id, "status"), "utf8")) as { pid?: unknown; "process-start-time"?: unknown };
      if (typeof st.pid !== "number" || st.pid <= 1) return undefined;
      const init = { pid: st.pid, startTime: typeof st["process-start-time"] === "number" ? st["process-start-time"] : undefined };
      this.inits.set(id, init);
      return init;
    } catch {
      return undefined;
    }
  }

  hasState(id: string): boolean {
    return fs.existsSync(path.join(this.root, id));
  }

  async removeState(id: string, _dir: string, ask: boolean): Promise<void> {
    if (ask) await this.host.run(this.program, ["--root", this.root, "delete", "--force", id], { allowFailure: true });
    await fsp.rm(path.join(this.root, id), { recursive: true, force: true });
    this.inits.delete(id);
  }

  /** Sandboxes with crun state (crun's own directory per container). */
  async hostIds(): Promise<string[]> {
    await fsp.mkdir(this.root, { recursive: true, mode: 0o711 });
    return fsp.readdir(this.root);
  }

  /** Through corral-launch --set-hostname (the sandbox itself has no CAP_SYS_ADMIN): hostname.ts. */
  rename(_id: string, init: { readonly pid: number; readonly startTime: number }, hostname: string): Promise<void> {
    return setContainerHostname(this.host, this.launcher, init, hostname);
  }

  async probe(): Promise<{ missing: string[]; notes: string[] }> {
    return { missing: [], notes: [] };
  }
}
