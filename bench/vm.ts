// The microVM part of npm run bench: corral's cold boot→first exec against
// the floor of a raw qemu-system-x86_64 boot of the same kernel and initrd
// to the guest's init, and the exec round trip inside a VM. Boots are
// seconds under TCG, so n is small and the two run interleaved.
import { spawn } from "node:child_process";
import { ensureInitrd, PROBE_MARK } from "../src/backends/vm/initrd.js";
import { bootImage, ensureKernel } from "../src/backends/vm/kernel.js";
import { guestCmdline, machineArgs, QEMU, type Accel } from "../src/backends/vm/qemu.js";
import { parseSpec } from "../src/core/sandbox-spec.js";
import type { Sandboxes } from "../src/runtime/sandboxes.js";
import { percentile, timeRuns } from "./stats.js";
import path from "node:path";


/** The sandbox every VM row measures. */
const VM_SPEC = { template: "busybox", backend: "vm" } as const;
/** Its machine, which the raw boot floor boots too. */
const VM_SHAPE = parseSpec(VM_SPEC).resources;

/**
 * Spawn → the guest init printing its mark (then it powers off): the same
 * kernel, initrd and machine (vCPUs, memory) as the sandbox it is the floor
 * of, no disks and no agent.
 */
function rawBoot(kernel: string, initrd: string, accel: Accel): Promise<number> {
  const cmdline = guestCmdline({ hostname: "raw", accel, upper: { kind: "tmpfs", bytes: 1 << 20 } }) + " corral.probe=1";
  const machine = machineArgs(accel, Math.ceil(VM_SHAPE.vcpus), Math.ceil(VM_SHAPE.memory / 2 ** 20));
  const args = [...machine, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot"];
  args.push("-kernel", kernel, "-initrd", initrd, "-append", cmdline, "-serial", "stdio");
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const q = spawn(QEMU, args, { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    let at = 0;
    q.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (!at && out.includes(PROBE_MARK)) at = performance.now() - t0;
    });
    q.on("error", reject);
    q.on("exit", () => (at ? resolve(at) : reject(new Error(`raw boot printed no mark: ${out.slice(-300)}`))));
    setTimeout(() => q.kill("SIGKILL"), 60_000).unref();
  });
}

export async function benchVm(s: Sandboxes, n: number): Promise<{ table: string; notes: string[] }> {
  const report = await s.backend("vm").probe();
  if (!report.available) return { table: "", notes: [`microVM rows skipped: ${report.notes.join("; ")}`] };
  const accel = (report.notes.find((x) => x.startsWith("accelerator: "))?.slice("accelerator: ".length) ?? "tcg") as Accel;
  const vmDir = path.join(s.stateDir, "vm");
  const kernel = await ensureKernel(vmDir);
  const initrd = await ensureInitrd(vmDir, kernel);
  // Warm the template image (built once per template) and page cache.
  await s.destroy((await s.create(VM_SPEC)).id);
  const raw: number[] = [];
  const cold: number[] = [];
  const coldBoot = async () => {
    const t0 = performance.now();
    const sb = await s.create(VM_SPEC);
    await s.exec(sb.id, { argv: ["/bin/true"] });
    cold.push(performance.now() - t0);
    await s.destroy(sb.id);
  };
  // Pairs in alternating order (raw first, then cold first), so neither
  // always follows the other's teardown.
  for (let i = 0; i < n; i++) {
    if (i % 2 === 1) await coldBoot();
    raw.push(await rawBoot(bootImage(kernel), initrd.path, accel));
    if (i % 2 === 0) await coldBoot();
  }
  // Restore → first exec, as a caller sees it: a named snapshot of a
  // running VM restored into a new sandbox, then a command in it.
  const source = await s.create(VM_SPEC);
  const snapshot = await s.snapshot(source.id, "bench-restore");
  await s.destroy(source.id);
  const restored: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await s.restoreSnapshot("bench-restore");
    await s.exec(r.id, { argv: ["/bin/true"] });
    restored.push(performance.now() - t0);
    await s.destroy(r.id);
  }
  await s.deleteSnapshot("bench-restore");

  // Create → first exec claimed from a VM pool: filled in the background
  // from the pool's own snapshot (restore, identity, warm-up).
  const pool = s.pools.set("busybox", {}, 1, "vm");
  const claimed: number[] = [];
  for (let i = 0; i < n; i++) {
    await s.refillPools();
    const t0 = performance.now();
    const sb = await s.create(VM_SPEC);
    await s.exec(sb.id, { argv: ["/bin/true"] });
    claimed.push(performance.now() - t0);
    await s.destroy(sb.id);
  }
  const hits = s.pools.list().find((p) => p.key === pool.key)?.hits ?? 0;
  if (hits !== n) throw new Error(`${n - hits} of ${n} VM creates missed the pool`);
  s.pools.set("busybox", {}, 0, "vm");
  for (const w of s.pools.waiting(pool.key)) await s.destroy(w.id);

  const sb = await s.create(VM_SPEC);
  const client = await s.agent(sb.id);
  const rtt = await timeRuns(n * 10, () => client.run({ argv: ["/bin/true"] }));
  const hello = await timeRuns(n * 10, () => client.hello());
  client.close();
  await s.destroy(sb.id);
  const floor = percentile(raw, 50);
  // Each cold boot over the raw boot beside it: the host's speed drifts
  // between pairs far more than within one.
  const paired = percentile(cold.map((c, i) => c / raw[i]!), 50);
  const row = (name: string, what: string, xs: number[], ratio: boolean, pairedRatio = "") =>
    `| ${name} | ${what} | ${xs.length} | ${percentile(xs, 50).toFixed(1)} | ${percentile(xs, 95).toFixed(1)} | ${ratio ? `${(percentile(xs, 50) / floor).toFixed(2)}×` : ""} | ${pairedRatio} |`;
  const table = [
    `| microVM (QEMU microvm, ${accel}, Debian ${kernel.release}) | measures | n | p50 ms | p95 ms | p50 / raw boot | median of pairs / raw boot |`,
    "|---|---|---:|---:|---:|---:|---:|",
    row("raw qemu-system-x86_64 boot (floor)", "spawn → guest init runs (same kernel + initrd)", raw, true, "1.00×"),
    row("corral VM cold create→first exec", "create (shim, QEMU, boot, overlay, agent) → exec /bin/true", cold, true, `${paired.toFixed(2)}×`),
    row("corral VM exec round trip", "exec /bin/true in a running VM (virtio-serial, mux)", rtt, false),
    row("corral VM agent round trip", "hello (protocol only)", hello, false),
    row("corral VM restore→first exec", `restore a named snapshot (${(snapshot.bytes / 2 ** 20).toFixed(0)} MiB: shim, QEMU -incoming, new identity) → exec /bin/true`, restored, true),
    row("corral VM create→first exec, claimed from a pool", "claim a VM restored and warmed up in the background → exec /bin/true", claimed, true),
  ].join("\n");
  const speedup = percentile(cold, 50) / percentile(restored, 50);
  return { table, notes: [`microVM cold create→first exec is ${paired.toFixed(2)}× the raw boot as the median of ${n} interleaved pairs (target ≤ 1.2×; ${(percentile(cold, 50) / floor).toFixed(2)}× p50 over p50, which this host's bimodal speed moves more: SPECIFICATION.md)`, `microVM restore is ${speedup.toFixed(1)}× faster than a cold boot at p50 (target ≥ 5× under TCG)`,`microVM ${report.notes.join("; ")}`] };
}
