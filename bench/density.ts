// npm run bench:density: how many idle sandboxes this host holds and what
// each costs. Starts N (default 1000) idle container sandboxes from one
// template, measures host memory and disk per sandbox, checks every one
// still answers an exec, removes them all and checks nothing is left.
// Writes docs/density.md.
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { diskUsage } from "../src/store/tree.js";
import { formatSize } from "../src/core/size.js";
import { findLeaks } from "../test/helpers/leaks.js";
import { benchState } from "./state.js";

const N = Number(process.env["CORRAL_DENSITY"] ?? 1000);
const TEMPLATE = process.env["CORRAL_DENSITY_TEMPLATE"] ?? "debian";
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** MemTotal - MemAvailable: what the host has given out, page cache it can reclaim excluded. */
function usedMemory(): number {
  const info = fs.readFileSync("/proc/meminfo", "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(info)?.[1] ?? 0) * 1024;
  return kb("MemTotal") - kb("MemAvailable");
}

async function main(): Promise<void> {
  const { s, cgroupParent, dispose } = await benchState("density");
  const lines: string[] = [];
  const say = (l: string) => {
    console.log(l);
    lines.push(l);
  };
  try {
    await s.store.ensureTemplate(TEMPLATE, (p) => process.stderr.write(`\r${TEMPLATE}: ${p.phase} ${p.percent ?? ""}%   `));
    process.stderr.write("\n");
    const templateBytes = (await Promise.all((await s.store.templateLayerDirs(TEMPLATE)).map((d) => diskUsage(d)))).reduce((a, b) => a + b, 0);
    const sandboxesDir = path.join(s.stateDir, "sandboxes");
    const diskBefore = await diskUsage(sandboxesDir);
    const memBefore = usedMemory();
    const t0 = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      ids.push((await s.create({ template: TEMPLATE, resources: { memory: "64M", pids: 64 } })).id);
      if ((i + 1) % 100 === 0) process.stderr.write(`\rstarted ${i + 1}/${N}`);
    }
    process.stderr.write("\n");
    const startSeconds = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 3000)); // let the kernel settle
    const memAfter = usedMemory();
    const diskAfter = await diskUsage(sandboxesDir);
    let cgroupMem = 0;
    for (const id of ids) cgroupMem += (await s.stats(id)).memoryBytes;

    const t1 = Date.now();
    let answered = 0;
    for (const id of ids) if ((await s.exec(id, { argv: ["true"] })).exitCode === 0) answered++;
    const execSeconds = (Date.now() - t1) / 1000;

    say(`| measure | value |`);
    say(`|---|---|`);
    say(`| idle sandboxes started | ${N} from \`${TEMPLATE}\` (${formatSize(templateBytes)} on disk), in ${startSeconds.toFixed(1)} s |`);
    say(`| host memory per idle sandbox (MemTotal − MemAvailable, delta / N) | ${formatSize((memAfter - memBefore) / N)} (target ≤ 1 MiB) |`);
    say(`| cgroup-charged memory per sandbox (mean) | ${formatSize(cgroupMem / N)} |`);
    say(`| disk per sandbox before it writes | ${formatSize((diskAfter - diskBefore) / N)} (target ≤ 100 KiB) |`);
    say(`| disk added by 100 sandboxes vs the template | ${(((diskAfter - diskBefore) / N) * 100 / templateBytes * 100).toFixed(2)} % (target < 1 %) |`);
    say(`| sandboxes answering an exec afterwards | ${answered} / ${N} (${((execSeconds * 1000) / N).toFixed(1)} ms each, one after another) |`);

    const t2 = Date.now();
    for (const id of ids) await s.destroy(id);
    const leaks = await findLeaks(s.stateDir, cgroupParent, s.cgroupMode);
    say(`| removal | all ${N} in ${((Date.now() - t2) / 1000).toFixed(1)} s; leaks found after: ${leaks.length === 0 ? "none" : leaks.length} |`);
    if (leaks.length) console.log(leaks.slice(0, 20).join("\n"));
  } finally {
    await dispose();
  }
  const host = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, Linux ${os.release()}`;
  await fsp.writeFile(
    path.join(root, "docs", "density.md"),
    `# Density\n\nMade by \`npm run bench:density\` (bench/density.ts, CORRAL_DENSITY=${N}) on ${new Date().toISOString().slice(0, 10)}, ${host}.\nEach sandbox: 64 MiB memory limit, 64 pids, ephemeral (writable layer in tmpfs, nothing written).\n\n${lines.join("\n")}\n`,
  );
}

await main();
