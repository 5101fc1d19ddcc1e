import { VmmUnavailableError } from "../../core/errors.js";
import type { VmmName } from "../../core/sandbox-spec.js";
import { cloudHypervisorDriver } from "./cloud-hypervisor.js";
import { firecrackerDriver } from "./firecracker.js";
import { qemuDriver } from "./qemu-driver.js";
import type { VmmDriver } from "./vmm-driver.js";

/** Every VMM a microVM sandbox can run on, one line each; the spec's `vmm` names one. */
export const VMM_DRIVERS: Readonly<Record<VmmName, VmmDriver>> = {
  qemu: qemuDriver,
  "cloud-hypervisor": cloudHypervisorDriver,
  firecracker: firecrackerDriver,
};

/** The driver of a spec's `vmm` (absent: a VM recorded before there was a choice, QEMU's). */
export function vmmDriver(name: VmmName | undefined): VmmDriver {
  return VMM_DRIVERS[name ?? "qemu"];
}

/** Drivers found usable in this process: a binary found stays found (one that goes missing later fails its start clearly). */
const usable = new Set<VmmName>();

/** The driver of `name`, refused with a 422 naming its binary when it cannot run on this host. */
export function usableVmmDriver(name: VmmName | undefined): VmmDriver {
  const d = vmmDriver(name);
  if (usable.has(d.name)) return d;
  const a = d.available();
  if (!a.ok) throw new VmmUnavailableError(d.name, d.binary, a.reason);
  usable.add(d.name);
  return d;
}
