import fs from "node:fs";
import { AGENT_PORT_NAME } from "./initrd.js";
import type { VmPlan } from "./plan.js";
import { AGENT_FD, CONSOLE_FD } from "./shim-files.js";
import type { Accel } from "./vmm-driver.js";
import { virtiofsQemuArgs } from "./vm-virtiofs.js";

export type { Accel } from "./vmm-driver.js";

export const QEMU = "qemu-system-x86_64";

/** The template image's optimal I/O size, as its virtio-blk device tells the guest (see qemuArgs). */
const TEMPLATE_OPT_IO_BYTES = 1 << 20;

/**
 * The guest CPU: the host's under KVM; under TCG QEMU's default qemu64 plus
 * ARAT (the local APIC timer keeps running when idle, which an emulated
 * one always does) and RDRAND. Without ARAT the guest kernel needs a
 * broadcast timer (HPET, absent from microvm) for one-shot ticks, so it
 * ticks at HZ forever: an idle TCG VM took ~7% of a core, and ~2.5%
 * tickless. RDRAND, which TCG emulates from the host's getrandom, seeds the
 * guest's crng at boot (random.trust_cpu=on), so no boot step waits for
 * virtio-rng (the init loads it in the background).
 */
export function cpuArgs(accel: Accel): string[] {
  return ["-cpu", accel === "kvm" ? "host" : "qemu64,+arat,+rdrand"];
}

/**
 * The machine: `microvm` with an RTC, the accelerator (TCG with one host
 * thread per vCPU when there are several: QEMU takes the accelerator's
 * options only from `-accel`, and refuses `-M accel=` beside it), the
 * guest CPU, vCPUs and memory. The benchmark's raw boot floor uses the
 * same machine.
 */
export function machineArgs(accel: Accel, vcpus: number, memoryMiB: number): string[] {
  const threads = accel === "tcg" && vcpus > 1 ? ",thread=multi" : "";
  return ["-M", "microvm,rtc=on", "-accel", `${accel}${threads}`, ...cpuArgs(accel), "-smp", String(vcpus), "-m", `${memoryMiB}M`];
}

/**
 * The QEMU command line of a plan: the `microvm` machine (no PCI, no
 * firmware tables beyond what Linux needs, virtio-mmio devices), the agent
 * on a virtio-serial port and the serial console on socketpair fds the shim
 * holds (so no other host process can talk to the guest), disks identified
 * to the guest by serial (virtio-mmio probe order is not command-line
 * order), QMP on a unix socket for snapshots.
 */
export function qemuArgs(plan: VmPlan, accel: Accel, qmpSocket: string, runAs?: number): string[] {
  if (plan.agent.kind !== "virtio-serial") throw new RangeError("the QEMU driver speaks to the agent over virtio-serial");
  const vfs = virtiofsQemuArgs(plan.shares ?? [], plan.memoryMiB);
  const machine = machineArgs(accel, plan.vcpus, plan.memoryMiB);
  machine[1] += vfs.machine;
  const args = [
    ...confinement(runAs),
    ...machine,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-no-reboot",
    "-kernel",
    plan.kernel,
    "-initrd",
    plan.initrd,
    "-append",
    plan.cmdline,
    "-chardev",
    `socket,id=console,fd=${CONSOLE_FD}`,
    "-serial",
    "chardev:console",
    "-device",
    "virtio-serial-device,max_ports=2",
    "-chardev",
    `socket,id=agent,fd=${AGENT_FD}`,
    "-device",
    `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    "-device",
    "virtio-rng-device",
    "-qmp",
    `unix:${qmpSocket},server=on,wait=off`,
  ];
  for (const d of plan.disks) {
    const opts = [`id=${d.id}`, `file=${d.path}`, "format=raw", "if=none", d.readOnly ? "readonly=on" : "cache=writeback"];
    // The template image says its optimal I/O size is 1 MiB, so the guest
    // reads it ahead 2 MiB at a time (Linux sets a disk's readahead to
    // twice that size, else 128 KiB): under TCG the first reads of a boot
    // cost 1-2 ms a request whatever their size (fresh code paths to
    // translate; ~50 µs later on), and a first exec of busybox took 18
    // reads of 128 KiB instead of 4.
    const hint = d.readOnly ? `,opt_io_size=${TEMPLATE_OPT_IO_BYTES}` : "";
    args.push("-drive", opts.join(","), "-device", `virtio-blk-device,drive=${d.id},serial=corral-${d.id}${hint}`);
  }
  args.push(...vfs.args);
  if (plan.net) {
    args.push("-netdev", `tap,id=net0,ifname=${plan.net.tap},script=no,downscript=no`, "-device", `virtio-net-device,netdev=net0,mac=${plan.net.mac}`);
  }
  return args;
}

/**
 * QEMU is the guest's first target on the host, so it runs confined: its
 * seccomp filter (`-sandbox`: no obsolete syscalls, no resource-control
 * calls; no_new_privs) and, once it has opened its disks, sockets and
 * /dev/kvm as root, as an unprivileged uid of its own (`-runas`), not root.
 * (`elevateprivileges=deny` would also forbid the setuid of -runas.)
 * `spawn` stays allowed: snapshots migrate through `exec:cat`.
 */
export function confinement(runAs: number | undefined): string[] {
  const c = ["-sandbox", "on,obsolete=deny,resourcecontrol=deny"];
  if (runAs !== undefined) c.push("-runas", `${runAs}:${runAs}`);
  return c;
}

/** The same arguments for another uid (a restore runs as its own sandbox's uid). */
export function withRunAs(args: readonly string[], runAs: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "-runas") {
      out.push("-runas", `${runAs}:${runAs}`);
      i++;
    } else out.push(args[i]!);
  }
  return out;
}

/**
 * The host TSC rate in kHz, for the guest's `tsc_early_khz=`: under TCG the
 * guest reads the host's TSC, and calibrating it against the emulated PIT
 * fails now and then on a loaded host (the guest then hangs at boot).
 */
export function hostTscKhz(): number | undefined {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"));
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch {
    return undefined;
  }
}

export interface GuestOptions {
  readonly hostname: string;
  /** tmpfs upper layer of this many bytes, or the VM's own disk. */
  readonly upper: { readonly kind: "tmpfs"; readonly bytes: number } | { readonly kind: "disk" };
  readonly accel: Accel;
  /**
   * For VMs that will be snapshotted (pools): the kernel zeroes pages it
   * frees (init_on_free=1), so the snapshot carries them as zero-page flags
   * (a 256 MiB busybox VM: 97 MB → 56 MB). It costs the boot some time, so
   * only these VMs pay it.
   */
  readonly zeroFreedPages?: boolean;
  /** The spec's resources.pids: the guest's processes (the agent's and everything under it) beyond it fail to fork. */
  readonly pids?: number;
  /** Where /nix/store comes from (vm-nix.ts): the closure image (disk serial corral-nix) or the host's store shared. */
  readonly nixStore?: "disk" | "share";
  /** The store is the lower layer of a writable overlay (nix: { writable: true }). */
  readonly nixWritable?: boolean;
  /** network "nat": the guest's address, its gateway and resolver (corral-init sets them up, no DHCP). */
  readonly net?: { readonly address: string; readonly prefix: number; readonly gateway: string; readonly dns: string };
}

/** The kernel command line corral's guest init reads (initrd.ts). */
export function guestCmdline(o: GuestOptions): string {
  const parts = ["console=ttyS0", "panic=-1", "reboot=t", "quiet", "8250.nr_uarts=1", "random.trust_cpu=on", "rdinit=/init"];
  if (o.zeroFreedPages) parts.push("init_on_free=1");
  if (o.accel === "tcg") {
    const khz = hostTscKhz();
    // tsc=reliable: the guest's TSC is the host's (invariant), but the
    // clocksource watchdog checks it against jiffies, which lag whenever a
    // loaded host deschedules the vCPU; it then marks the TSC unstable and
    // the guest falls back to a periodic HZ tick for good (seen at load 10:
    // nohz_mode 0 after 20 s, tick_handle_periodic).
    if (khz) parts.push(`tsc_early_khz=${khz}`, "no_timer_check", "tsc=reliable");
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(o.hostname)) throw new RangeError(`bad hostname for a guest: ${o.hostname}`);
  parts.push(`corral.hostname=${o.hostname}`);
  if (o.upper.kind === "disk") parts.push("corral.upper=disk");
  else parts.push("corral.upper=tmpfs", `corral.size=${Math.floor(o.upper.bytes)}`);
  if (o.pids !== undefined) parts.push(`corral.pids=${Math.floor(o.pids)}`);
  if (o.nixStore !== undefined) parts.push(`corral.nix=${o.nixStore}`);
  if (o.nixWritable) parts.push("corral.nixrw=1");
  if (o.net) {
    const ip = /^\d{1,3}(\.\d{1,3}){3}$/;
    if (![o.net.address, o.net.gateway, o.net.dns].every((a) => ip.test(a))) throw new RangeError(`bad guest network ${JSON.stringify(o.net)}`);
    parts.push(`corral.net=${o.net.address}/${Math.floor(o.net.prefix)},${o.net.gateway},${o.net.dns}`);
  }
  return parts.join(" ");
}
