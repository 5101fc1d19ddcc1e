import type net from "node:net";
import os from "node:os";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { killQuietly, processRunning } from "../../host/process.js";
import { cgroupMode, ContainerCgroup, SPARE_PREFIX } from "../../host/cgroups.js";

const SHIM = fileURLToPath(new URL("./shim.js", import.meta.url));
export const REFILL_DELAY_MS = 100;

/**
 * Starts VM shims (shim.ts). Node takes 100-150 ms to start one on these
 * machines, on the path of every VM create and restore; with `keepSpare`
 * (a long-lived process: the daemon) one shim is started ahead of need and
 * waits for its VM, and the next one once that VM has started. A spare
 * starts at the lowest CPU priority, so it takes only idle CPU from the
 * VMs and commands running (it gets its priority back, before it starts
 * QEMU, when a VM takes it). A spare whose starter dies sees its stdin
 * close and exits.
 *
 * After a VM has started, the next spare starts REFILL_DELAY_MS later
 * (`refillSoon`), not at once: spawning it blocks the starter's event
 * loop for as long as fork() takes to copy its page tables (a few ms for
 * a daemon of 150 MiB), and that would land on the caller's first command
 * to the new VM.
 */
export class ShimLauncher {
  private spare: ChildProcess | undefined;
  private pending: NodeJS.Timeout | undefined;

  /** `cgroupParent`: where spares wait in cgroups of their own (shim.ts spareCgroup). */
  constructor(
    private readonly keepSpare: boolean,
    private readonly cgroupParent?: string,
  ) {}

  /** A shim for the VM in `dir`; its fd 3 (stdio[3]) says "ready" or why not, then closes. */
  start(dir: string): ChildProcess {
    const c = this.take() ?? startShim(undefined); // given its VM at once: it enters the VM's cgroup
    ref(c);
    setPriority(c, 0);
    c.stdin!.end(`${dir}\n`);
    return c;
  }

  /** Starts the spare, if one is wanted and there is none. */
  refill(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    if (!this.keepSpare || this.spare) return;
    const c = startShim(this.cgroupParent);
    unref(c);
    setPriority(c, 19);
    c.once("exit", () => {
      if (this.spare === c) this.spare = undefined;
    });
    this.spare = c;
  }

  /** The waiting spare's pid, if there is one. */
  get sparePid(): number | undefined {
    return this.spare?.pid;
  }

  /** refill(), REFILL_DELAY_MS from now (once, however often asked meanwhile). */
  refillSoon(): void {
    if (!this.keepSpare || this.spare || this.pending) return;
    this.pending = setTimeout(() => this.refill(), REFILL_DELAY_MS);
    this.pending.unref();
  }

  /**
   * Lets the spare go: it exits when its stdin closes. One in a cgroup of
   * its own is killed instead, and its cgroup removed here and now (it may
   * still be making it): whoever closes this may remove their parent next.
   */
  close(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    const c = this.spare;
    this.spare = undefined;
    const mode = cgroupMode();
    if (c?.pid !== undefined && this.cgroupParent !== undefined && mode !== "v2") {
      killQuietly(c.pid);
      const wait = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 1000 && processRunning(c.pid); i++) Atomics.wait(wait, 0, 0, 1);
      const cg = new ContainerCgroup(mode, `${this.cgroupParent}/${SPARE_PREFIX}${c.pid}`);
      for (let i = 0; i < 100 && cg.dirs().length > 0; i++) {
        cg.leaveSync(c.pid);
        if (cg.dirs().length > 0) Atomics.wait(wait, 0, 0, 1);
      }
    }
    c?.stdin?.destroy();
  }

  /** The spare, if it still runs (its exit event may not have come yet: /proc says). */
  private take(): ChildProcess | undefined {
    const c = this.spare;
    this.spare = undefined;
    if (!c || c.pid === undefined || c.exitCode !== null || c.signalCode !== null || !c.stdin?.writable) return undefined;
    if (processRunning(c.pid)) return c;
    c.stdin.destroy();
    return undefined;
  }
}

function startShim(cgroupParent: string | undefined): ChildProcess {
  const args = [SHIM, "--spare", ...(cgroupParent === undefined ? [] : ["--cgroup-parent", cgroupParent])];
  const c = spawn(process.execPath, args, { detached: true, stdio: ["pipe", "ignore", "ignore", "pipe"] });
  c.unref();
  c.on("error", () => {});
  c.stdin!.on("error", () => {});
  return c;
}

/** A waiting spare must not keep its starter's event loop alive (a CLI process would never exit). */
function unref(c: ChildProcess): void {
  (c.stdin as unknown as net.Socket).unref();
  (c.stdio[3] as net.Socket).unref();
}

function ref(c: ChildProcess): void {
  (c.stdin as unknown as net.Socket).ref();
  (c.stdio[3] as net.Socket).ref();
}

function setPriority(c: ChildProcess, nice: number): void {
  try {
    if (c.pid !== undefined) os.setPriority(c.pid, nice);
  } catch {
    // It has exited: its fd 3 tells.
  }
}
