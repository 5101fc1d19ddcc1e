import type { ResolvedSpec } from "../../core/sandbox-spec.js";
import type { BackendKind } from "../backend.js";

/** The process whose life is the sandbox's, as the runtime recorded it. */
export interface InitProcess {
  readonly pid: number;
  /** /proc/PID/stat start time, so a recycled pid is never taken for it; undefined where unrecorded. */
  readonly startTime: number | undefined;
}

/** What differs in the common OCI config (oci-config.ts) from one runtime to another. */
export interface RuntimeConfigOptions {
  /** The agent reports "ready" on fd 3 (the runtime passes the launcher's fd 3 through). */
  readonly readyFd: boolean;
  /** The host cgroup's pids limit. */
  readonly pidsLimit: number;
}

/**
 * An OCI runtime that runs a container sandbox from the bundle the
 * container backend makes (config.json, and rootfs/ as corral-launch's
 * overlay): crun (crun.ts) or gVisor's runsc (backends/gvisor/runsc.ts).
 * Everything else (the bundle, the overlay and tmpfs in the launcher's
 * private mount namespace, the agent's socket, cgroup reads, stop and
 * destroy) is the container backend's, the same for both.
 */
export interface OciRuntime {
  /** The kind of sandbox it makes. */
  readonly kind: BackendKind;
  /** Its program, for probe() and messages. */
  readonly program: string;
  /** Where it keeps its state (its --root). */
  readonly root: string;
  /** How to get it, for probe(). */
  readonly install: string;
  /** Whether it can run a sandbox in a network namespace corral made (network "nat"). */
  readonly networking: boolean;
  /** Whether a "ready" line comes on the launcher's fd 3 (else started() waits for the agent). */
  readonly readyPipe: boolean;
  configOptions(spec: ResolvedSpec): RuntimeConfigOptions;
  /** The command line after corral-launch's `--`: run bundle `bundle` as `id`, detached. */
  runArgs(id: string, bundle: string): Promise<string[]>;
  /** After the launcher has exited successfully: records the init, and waits for the agent if readyPipe is false. */
  started(id: string, dir: string, timeoutMs: number): Promise<void>;
  /** Its record of a sandbox's init; undefined when there is none. */
  init(id: string, dir: string): InitProcess | undefined;
  /** Whether it has state for the sandbox. */
  hasState(id: string, dir: string): boolean;
  /**
   * Removes its state of a sandbox whose processes are gone, and what it
   * caches of it; `ask` has the runtime delete it itself first (a sandbox
   * that failed half way through the runtime's own setup).
   */
  removeState(id: string, dir: string, ask: boolean): Promise<void>;
  /** Ids it has state for (reconcile compares them with the database). */
  hostIds(): Promise<string[]>;
  /** Gives a running sandbox a new hostname. */
  rename(id: string, init: { readonly pid: number; readonly startTime: number }, hostname: string): Promise<void>;
  /** Processes in the sandbox, where the cgroup's count is not that (gVisor: the sentry's host threads). */
  processCount?(id: string): Promise<number>;
  /** What probe() says besides the program being there: [missing, notes]. */
  probe(): Promise<{ missing: string[]; notes: string[] }>;
}
