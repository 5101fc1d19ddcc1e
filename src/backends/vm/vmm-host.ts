import fs from "node:fs";
import path from "node:path";

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

/** Binary on PATH and, for a VMM that needs it, /dev/kvm read-write; the reason names the binary and the fix. */
export function vmmAvailability(binary: string, needsKvm: boolean, install: string): Availability {
  const found = findOnPath(binary);
  if (!found) return { ok: false, reason: `${binary} is not installed (not on PATH; ${install})` };
  const kvm = needsKvm ? kvmProblem() : undefined;
  if (kvm) return { ok: false, reason: `${kvm}; ${binary} needs KVM` };
  return { ok: true, binary: found };
}
