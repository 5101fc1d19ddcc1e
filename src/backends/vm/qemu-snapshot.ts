import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash } from "node:crypto";
import { AgentClient } from "../../agent/client.js";
import { BackendError } from "../../core/errors.js";
import { runCommand } from "../../host/command.js";
import type { VmIdentity } from "./identity.js";
import { Qmp } from "./qmp.js";
import { QEMU, withRunAs } from "./qemu.js";
import { INCOMING_FD, shimPaths } from "./shim-files.js";
import type { RestoreLaunch, VmmLaunch, VmmSnapshots } from "./vmm-driver.js";

/** What a snapshot's QEMU arguments hold in place of the saved VM's own directory and identity. */
export const DIR_MARK = "@SANDBOX_DIR@";
const MARKS = { mac: "@MAC@", tap: "@TAP@", cid: "@CID@" } as const;

/**
 * Where a VM's identity reaches QEMU's arguments: the tap and MAC of a
 * network device (`ifname=`, `mac=`) and a vhost-vsock device's
 * `guest-cid=`. Matched as whole option values, so a path or a command
 * line that happens to contain the text is left alone.
 */
function swapIdentity(arg: string, from: { mac: string; tap: string; cid: string }, to: { mac: string; tap: string; cid: string }): string {
  return arg
    .split(",")
    .map((o) => (o === `mac=${from.mac}` ? `mac=${to.mac}` : o === `ifname=${from.tap}` ? `ifname=${to.tap}` : o === `guest-cid=${from.cid}` ? `guest-cid=${to.cid}` : o))
    .join(",");
}

const text = (id: VmIdentity) => ({ mac: id.mac, tap: id.tap, cid: String(id.cid) });

/** `args` of the VM in `dir` with `identity` with both replaced by marks. */
export function markArgs(args: readonly string[], dir: string, identity: VmIdentity): string[] {
  return args.map((a) => swapIdentity(a.replaceAll(dir, DIR_MARK), text(identity), MARKS));
}

/** Marked arguments made the VM's in `dir` with `identity`. */
export function unmarkArgs(args: readonly string[], dir: string, identity: VmIdentity): string[] {
  return args.map((a) => swapIdentity(a.replaceAll(DIR_MARK, dir), MARKS, text(identity)));
}

/** The uid in a QEMU command line's -runas, if any. */
export function runAsOf(args: readonly string[]): number | undefined {
  const i = args.indexOf("-runas");
  return i >= 0 ? Number(args[i + 1]!.split(":")[0]) : undefined;
}

/**
 * QEMU's snapshots: a live migration over QMP into a file, and a restore
 * that starts QEMU with the saved VM's arguments plus `-incoming fd:5`.
 */
export const qemuSnapshots: VmmSnapshots = {
  save: saveQemuVm,

  portable(launch: VmmLaunch, dir: string): string[] {
    return markArgs(launch.args, dir, launch.identity);
  },

  shape(portableArgs: readonly string[], hostname: string): string {
    // Nor the address of a networked VM: a restored copy is moved to its own (vm-snapshots.ts reidentify).
    const norm = withRunAs(portableArgs, 0).map((a) => a.replace(`corral.hostname=${hostname}`, "corral.hostname=@").replace(/\bcorral\.net=\S+/, "corral.net=@"));
    return createHash("sha256").update(JSON.stringify(norm)).digest("hex").slice(0, 32);
  },

  /** The saved devices, RAM and device state from the file; its own directory, identity and uid. */
  restore(saved: readonly string[], memory: string, o: { dir: string; identity: VmIdentity; runAs: number | undefined }): RestoreLaunch {
    const own = unmarkArgs(saved, o.dir, o.identity);
    return {
      vmm: "qemu",
      binary: QEMU,
      args: o.runAs === undefined ? own : withRunAs(own, o.runAs),
      wiring: { kind: "fds" },
      guestStop: "poweroff",
      identity: o.identity,
      incoming: { file: memory, args: ["-incoming", `fd:${INCOMING_FD}`] },
    };
  },
};

/**
 * Saves a running, idle VM: migrates RAM and device state to `out/memory`
 * (QEMU's migration stream; zero pages cost a few bytes; QEMU pauses the
 * VM for the last pass), and resumes it. An ephemeral VM's root is the
 * shared read-only image and its writable layer tmpfs, so RAM is all its
 * state; a persistent VM's disk image is copied (sparse) while the VM is
 * still paused after the last pass, so memory and disk are of the same
 * instant (the guest's own dirty pages are in the memory image; QEMU's
 * writes are in the host page cache, which the copy reads).
 */
async function saveQemuVm(vmDir: string, out: string, launch: VmmLaunch): Promise<void> {
  const qemuUid = runAsOf(launch.args);
  // QEMU (no longer root) writes the stream through `exec:cat`: into a dir of its uid, handed back after.
  if (qemuUid !== undefined) await fsp.chown(out, qemuUid, qemuUid);
  // Clean page cache is dropped first: with init_on_free=1 (qemu.ts) the
  // freed pages are zero, which the migration stream carries as a flag.
  await dropCaches(vmDir).catch(() => {});
  const q = await Qmp.connect(shimPaths(vmDir).qmpSocket);
  try {
    // Live migration, not stop-then-migrate: the run state travels with the
    // stream, and a guest saved paused would be restored paused.
    await q.execute("migrate", { uri: `exec:cat > ${shellQuote(path.join(out, "memory"))}` });
    for (;;) {
      const st = (await q.execute("query-migrate")) as { status?: string; "error-desc"?: string };
      if (st.status === "completed") break;
      if (st.status === "failed" || st.status === "cancelled") throw new BackendError(`snapshot of ${vmDir} failed: ${st["error-desc"] ?? st.status}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    if (qemuUid !== undefined) {
      await fsp.chown(out, 0, 0);
      await fsp.chown(path.join(out, "memory"), 0, 0);
      await fsp.chmod(path.join(out, "memory"), 0o600);
    }
    const disk = path.join(vmDir, "disk.img");
    if (fs.existsSync(disk)) await runCommand("cp", ["--sparse=always", disk, path.join(out, "disk.img")]);
  } finally {
    await q.execute("cont").catch(() => {});
    q.close();
  }
}

async function dropCaches(vmDir: string): Promise<void> {
  const c = await AgentClient.connect(shimPaths(vmDir).agentSocket, 2000);
  try {
    await c.run({ argv: ["/run/corral/busybox", "sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], timeoutMs: 5000 });
  } finally {
    c.close();
  }
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
