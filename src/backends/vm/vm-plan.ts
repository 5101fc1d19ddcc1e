import path from "node:path";
import type { Store } from "../../store/store.js";
import type { CreateRequest } from "../backend.js";
import { ensureTemplateImage } from "./erofs.js";
import { vmIdentityOf } from "./identity.js";
import { ensureInitrd } from "./initrd.js";
import { bootImage, ensureKernel } from "./kernel.js";
import { AGENT_VSOCK_PORT, type VmAgentChannel, type VmPlan } from "./plan.js";
import { guestCmdline } from "./qemu.js";
import { shimPaths } from "./shim-files.js";
import type { Accel, VmmDriver } from "./vmm-driver.js";
import { vmNixStore } from "./vm-nix.js";
import { checkSharesVmm, planShares, shareCmdline, VIRTIOFS_MODULES } from "./vm-virtiofs.js";
import { CorralError } from "../../core/errors.js";

/** The most the guest's kernel command line holds (x86 COMMAND_LINE_SIZE, with its NUL). */
const MAX_CMDLINE = 2047;

const MiB = 1024 * 1024;

/**
 * The plan of a sandbox, the same for every driver but for the agent's
 * channel (the driver's kind: a virtio-serial port whose host end is the
 * shim's agent.sock, or vsock behind a hybrid vsock socket in the sandbox
 * dir) and the guest modules its devices need. The identity (MAC, tap,
 * vsock CID) is the sandbox's name's: `req.hostname`, as every start and
 * restore passes it.
 */
export async function planVm(vmDir: string, store: Store, req: CreateRequest, driver: VmmDriver, accel: Accel): Promise<VmPlan> {
  const persistent = req.spec.lifetime.mode === "persistent";
  const nix = await vmNixStore(store, req.nixStore, { persistent, diskBytes: req.spec.resources.disk });
  const hostShares = [...(nix && "share" in nix ? [nix.share] : []), ...(req.shares ?? [])];
  checkSharesVmm(hostShares, driver.name);
  const kernel = await ensureKernel(vmDir);
  const initrd = await ensureInitrd(vmDir, kernel, [...(driver.guestModules ?? []), ...(hostShares.length ? VIRTIOFS_MODULES : [])]);
  const image = await ensureTemplateImage(store, req.layers.map((d) => path.basename(d)));
  const p = shimPaths(req.dir);
  const identity = vmIdentityOf(req);
  const shares = await planShares(req.dir, hostShares, store.uidBase);
  const agent: VmAgentChannel =
    driver.agent === "virtio-serial"
      ? { kind: "virtio-serial", socket: p.agentSocket }
      : { kind: "vsock", cid: identity.cid, port: AGENT_VSOCK_PORT, uds: p.vsockSocket };
  const cmdline = [
    guestCmdline({
      hostname: req.hostname,
      accel,
      upper: persistent ? { kind: "disk" } : { kind: "tmpfs", bytes: req.spec.resources.disk },
      // Only for VMs that will be snapshotted (a pool's, where the VMM can).
      zeroFreedPages: req.warm === true && !persistent && driver.snapshots !== undefined,
      pids: req.spec.resources.pids,
      ...(nix ? { nixStore: nix.cmdline, nixWritable: nix.writableInGuest } : {}),
      ...(req.net ? { net: { address: req.net.address, prefix: req.net.prefix, gateway: req.net.gateway, dns: req.net.dns } } : {}),
    }),
    ...shareCmdline(shares),
  ].join(" ");
  if (cmdline.length > MAX_CMDLINE) {
    throw new CorralError("too_many_shares", `the VM's shares do not fit its kernel command line (${cmdline.length} of ${MAX_CMDLINE} bytes): use fewer or shorter targets`, 422);
  }
  return {
    name: req.id,
    kernel: bootImage(kernel),
    initrd: initrd.path,
    cmdline,
    vcpus: Math.max(1, Math.ceil(req.spec.resources.vcpus)),
    memoryMiB: Math.max(64, Math.ceil(req.spec.resources.memory / MiB)),
    disks: [
      { id: "root", path: image, readOnly: true },
      ...(nix && "disk" in nix ? [nix.disk] : []),
      ...(persistent ? [{ id: "data", path: path.join(req.dir, "disk.img"), readOnly: false }] : []),
    ],
    agent,
    ...(shares.length ? { shares } : {}),
    // The tap is the network slot's (named after the state dir, so two state dirs never clash), the MAC the name's.
    ...(req.net?.tap ? { net: { tap: req.net.tap, mac: req.net.mac } } : {}),
    consoleLog: p.console,
    identity,
  };
}
