import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Host } from "../../host/host.js";

/** How gVisor's sentry takes the sandbox's system calls: ptrace (anywhere) or KVM (a virtual machine of its own). */
export type GvisorPlatform = "ptrace" | "kvm";

export interface PlatformChoice {
  readonly platform: GvisorPlatform;
  readonly detail: string;
}

/** Per host boot, not per state dir: the answer only changes with the host. */
const CACHE_DIR = process.env["CORRAL_RUN_DIR"] ?? "/run/corral";
const PROBE_TIMEOUT_MS = 5000;

interface ProbeRecord extends PlatformChoice {
  readonly bootId: string;
}

/**
 * ptrace unless KVM is proved to work. `/dev/kvm` being there is not
 * enough: nested KVM on hosts like ours accepts a VM and then hangs it
 * (`runsc --platform=kvm do /bin/true` never returned here, where ptrace
 * echoes in ~0.2 s). So the probe runs `/bin/true` in a throwaway sandbox
 * (no cgroups, no network, its own state root) under KVM with a timeout.
 * Cached in /run per host boot; CORRAL_GVISOR_PLATFORM=ptrace|kvm
 * overrides it.
 */
export async function gvisorPlatform(host: Host, program: string): Promise<PlatformChoice> {
  const forced = process.env["CORRAL_GVISOR_PLATFORM"];
  if (forced === "ptrace" || forced === "kvm") return { platform: forced, detail: "set by CORRAL_GVISOR_PLATFORM" };
  const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  const file = path.join(CACHE_DIR, "gvisor-platform.json");
  try {
    const r = JSON.parse(await fsp.readFile(file, "utf8")) as ProbeRecord;
    if (r.bootId === bootId) return { platform: r.platform, detail: r.detail };
  } catch {
    /* not probed yet */
  }
  const choice = await probeKvm(host, program);
  await fsp.mkdir(CACHE_DIR, { recursive: true });
  await fsp.writeFile(file, JSON.stringify({ bootId, ...choice } satisfies ProbeRecord));
  return choice;
}

async function probeKvm(host: Host, program: string): Promise<PlatformChoice> {
  try {
    fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return { platform: "ptrace", detail: "/dev/kvm is missing" };
  }
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-runsc-probe-"));
  try {
    const r = await host.run(program, ["--root", root, "--ignore-cgroups", "--network=none", "--platform=kvm", "do", "/bin/true"], {
      allowFailure: true,
      timeoutMs: PROBE_TIMEOUT_MS,
    });
    if (r.code === 0) return { platform: "kvm", detail: "a sandbox ran under KVM" };
    return { platform: "ptrace", detail: `a sandbox did not run under KVM within ${PROBE_TIMEOUT_MS} ms (exit ${r.code}); using ptrace` };
  } catch (e) {
    return { platform: "ptrace", detail: `KVM unusable: ${(e as Error).message}` };
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
}
