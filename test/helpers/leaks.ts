import fsp from "node:fs/promises";
import path from "node:path";
import { mountPoints } from "../../src/host/mounts.js";
import { processRunning } from "../../src/host/process.js";
import { listChildren, SPARE_PREFIX, type CgroupMode } from "../../src/host/cgroups.js";
import { runCommand } from "../../src/host/command.js";
import { netNames } from "../../src/network/names.js";

/**
 * Everything a sandbox may leave on the host, looked for directly: mounts
 * under the state dir, cgroups under the parent, live processes in those
 * cgroups or naming the state dir, and sandbox/crun/runsc entries.
 * Returns one line per leak.
 */
export async function findLeaks(stateDir: string, cgroupParent: string, mode: CgroupMode): Promise<string[]> {
  // A VM spare shim whose daemon has just gone leaves its cgroup and then
  // exits (shim.ts): give it the time; one still there after is a leak.
  for (let i = 0; i < 150 && (await listChildren(mode, cgroupParent)).some((c) => c.startsWith(SPARE_PREFIX)); i++) await new Promise((r) => setTimeout(r, 20));
  const leaks: string[] = [];
  for (const m of await mountPoints()) if (m.startsWith(stateDir)) leaks.push(`mount ${m}`);
  for (const c of await listChildren(mode, cgroupParent)) leaks.push(`cgroup ${cgroupParent}/${c}`);
  for (const pid of await fsp.readdir("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    if (!processRunning(Number(pid))) continue; // zombies hold nothing (DESIGN: pid 1 here does not reap)
    const cg = await fsp.readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "");
    const cmd = (await fsp.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replaceAll("\0", " ");
    if (cg.includes(`/${cgroupParent}/`) || cmd.includes(stateDir)) {
      const where = new RegExp(`/${cgroupParent}/([^/\n]+)`).exec(cg)?.[1] ?? "?";
      leaks.push(`process ${pid} in ${cgroupParent}/${where}: ${cmd.slice(0, 120)}`);
    }
  }
  leaks.push(...(await networkLeaks(stateDir)));
  for (const sub of ["sandboxes", "crun", "runsc", "net/slots"]) {
    const entries = await fsp.readdir(path.join(stateDir, sub)).catch(() => []);
    for (const e of entries) leaks.push(`${sub}/${e}`);
  }
  return leaks;
}

/** The state dir's network objects: namespaces, links (veth ends, taps, the bridge) and nftables tables, all named after it. */
export async function networkLeaks(stateDir: string): Promise<string[]> {
  const names = netNames(stateDir);
  const leaks: string[] = [];
  for (const ns of await fsp.readdir("/run/netns").catch(() => [])) if (ns.startsWith(`corral-${names.tag}-`)) leaks.push(`netns ${ns}`);
  for (const link of await fsp.readdir("/sys/class/net")) if (link.startsWith(`crl${names.tag}`)) leaks.push(`link ${link}`);
  const tables = (await runCommand("nft", ["list", "tables"], { allowFailure: true })).stdout;
  for (const t of tables.split("\n")) if (t.endsWith(` ${names.table}`)) leaks.push(`nftables ${t.trim()}`);
  return leaks;
}
