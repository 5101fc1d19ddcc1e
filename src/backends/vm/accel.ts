import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { runCommand } from "../../host/command.js";
import { PROBE_MARK, type GuestInitrd } from "./initrd.js";
import { bootImage, type GuestKernel } from "./kernel.js";
import { QEMU, type Accel } from "./qemu.js";

/** Per host boot, not per state dir: the answer only changes with the host. */
const CACHE_DIR = process.env["CORRAL_RUN_DIR"] ?? "/run/corral";
const PROBE_TIMEOUT_MS = 8000;

interface ProbeRecord {
  readonly bootId: string;
  readonly kernel: string;
  readonly accel: Accel;
  readonly detail: string;
}

/**
 * KVM when a guest really boots under it, otherwise TCG. `/dev/kvm` being
 * there is not enough: nested KVM on these hosts accepts the VM and then
 * hangs a stock kernel forever (DESIGN.md). So the probe boots the guest
 * kernel and initrd with `corral.probe=1` (the init prints a mark and
 * powers off at once) under KVM with a timeout. Cached in /run per host
 * boot and kernel version.
 */
export async function probeAccel(kernel: GuestKernel, initrd: GuestInitrd): Promise<Accel> {
  const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  const file = path.join(CACHE_DIR, `accel-${kernel.version}.json`);
  try {
    const r = JSON.parse(await fsp.readFile(file, "utf8")) as ProbeRecord;
    if (r.bootId === bootId && r.kernel === kernel.version) return r.accel;
  } catch {
    /* not probed yet */
  }
  let accel: Accel = "tcg";
  let detail = "/dev/kvm is missing";
  try {
    fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK);
    const r = await runCommand(
      QEMU,
      [
        "-M", "microvm,accel=kvm", "-cpu", "host", "-m", "128M", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-kernel", bootImage(kernel), "-initrd", initrd.path,
        "-append", "console=ttyS0 panic=-1 quiet rdinit=/init corral.probe=1", "-serial", "stdio",
      ],
      { allowFailure: true, timeoutMs: PROBE_TIMEOUT_MS },
    );
    if (r.stdout.includes(PROBE_MARK)) {
      accel = "kvm";
      detail = "a guest booted under KVM";
    } else detail = `a guest did not boot under KVM within ${PROBE_TIMEOUT_MS} ms (exit ${r.code}); using TCG`;
  } catch (e) {
    detail = `KVM unusable: ${(e as Error).message}`;
  }
  await fsp.mkdir(CACHE_DIR, { recursive: true });
  const rec: ProbeRecord = { bootId, kernel: kernel.version, accel, detail };
  await fsp.writeFile(file, JSON.stringify(rec));
  return accel;
}
