import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { BackendError, HostError, TimeoutError } from "../../core/errors.js";
import { killQuietly, processRunning } from "../../host/process.js";
import { apiRequest, type ApiCall } from "./vmm-api.js";

/** What `available()` of a driver reports: usable, or why not. */
export type Availability = { readonly ok: true; readonly binary: string } | { readonly ok: false; readonly reason: string };

/** The first executable `name` on PATH, or undefined. */
export function findOnPath(name: string, envPath = process.env["PATH"] ?? ""): string | undefined {
  for (const dir of envPath.split(":")) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why /dev/kvm cannot be used by this process, or undefined when it can. */
export function kvmProblem(dev = "/dev/kvm"): string | undefined {
  try {
    fs.accessSync(dev, fs.constants.R_OK | fs.constants.W_OK);
    return undefined;
  } catch (e) {
    return `${dev} is not usable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}

/** Binary on PATH and /dev/kvm read-write; the reason names the fix. */
export function vmmAvailability(binary: string, docsHint: string): Availability {
  const found = findOnPath(binary);
  if (!found) return { ok: false, reason: `${binary} is not on PATH (see ${docsHint})` };
  const kvm = kvmProblem();
  if (kvm) return { ok: false, reason: `${kvm}; ${binary} needs KVM` };
  return { ok: true, binary: found };
}

/**
 * Starts a VMM in its own session with stdout and stderr appended to `log`
 * (so it outlives the daemon, like a container). Throws a HostError naming
 * the install doc when the binary is missing.
 */
export function spawnVmm(availability: Availability, args: readonly string[], log: string): number {
  if (!availability.ok) throw new HostError(availability.reason);
  const fd = fs.openSync(log, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o640);
  try {
    const child = spawn(availability.binary, args, { detached: true, stdio: ["ignore", fd, fd] });
    if (child.pid === undefined) throw new BackendError(`could not start ${availability.binary}`);
    child.on("error", () => {}); // exit is observed through the pid
    child.unref();
    return child.pid;
  } finally {
    fs.closeSync(fd);
  }
}

/** Removes sockets a previous run of the VMM left behind (it will not bind over them). */
export function removeStale(...paths: string[]): void {
  for (const p of paths) {
    try {
      if (fs.lstatSync(p).isSocket()) fs.unlinkSync(p);
    } catch {
      // not there
    }
  }
}

/** Last lines of a VMM's log, for an error message. */
export function logTail(log: string, lines = 8): string {
  try {
    return fs.readFileSync(log, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/**
 * Waits until the VMM answers `probe` on its API socket; fails early if the
 * process died (with the tail of its log).
 */
export async function waitForApi(pid: number, socket: string, probe: ApiCall, log: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    if (!processRunning(pid)) throw new BackendError(`the VMM (pid ${pid}) exited while starting:\n${logTail(log)}`);
    try {
      const r = await apiRequest(socket, probe, 1000);
      if (r.status >= 200 && r.status < 300) return;
    } catch {
      // socket not there yet
    }
    if (Date.now() >= deadline) throw new TimeoutError(`the VMM (pid ${pid}) did not open its API at ${socket} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Waits up to `graceMs` for `pid` to exit, then SIGKILLs it. */
export async function waitOrKill(pid: number, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (processRunning(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (processRunning(pid)) killQuietly(pid, "SIGKILL");
}
