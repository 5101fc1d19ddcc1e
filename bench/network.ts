// The network's costs, measured in one run: a cold create (and exec and
// destroy) with network "nat" against "none", interleaved, and the
// daemon's port proxy against a direct connection to the same server in a
// sandbox (wrk). `node dist/bench/network.js` runs it alone.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { haveCommand, runCommand } from "../src/host/command.js";
import { LOCAL_TENANT, type Sandboxes } from "../src/runtime/sandboxes.js";
import { percentile, timeInterleaved } from "./stats.js";

/** Where bench sandboxes get addresses: a /24 of 198.18.0.0/15 (nothing real answers there), DNS to nobody; spare slots as corrald keeps. */
export const BENCH_NETWORK = { range: "198.19.250.0/24", dnsUpstream: ["127.0.0.1:9"], spares: 4 } as const;

export interface NetworkBench {
  readonly table: string;
}

const row = (name: string, samples: number[], base?: number) =>
  `| ${name} | ${samples.length} | ${percentile(samples, 50).toFixed(2)} | ${percentile(samples, 95).toFixed(2)} | ${base === undefined ? "" : `+${(percentile(samples, 50) - base).toFixed(2)}`} |`;

/** Cold create→exec→destroy and create alone, nat vs none, interleaved. */
export async function benchNetworkCreate(s: Sandboxes, runs: number): Promise<string[]> {
  const cycle = (network: "none" | "nat") => async () => {
    const sb = await s.create({ template: "busybox", network });
    const r = await s.exec(sb.id, { argv: ["/bin/true"] });
    if (r.exitCode !== 0) throw new Error("true failed");
    await s.destroy(sb.id);
  };
  // One nat sandbox stays up meanwhile: the bridge, tables and resolver are
  // set up once per state dir, not per create (its first create pays them).
  const keep = await s.create({ template: "busybox", network: "nat" });
  try {
    const both = await timeInterleaved(runs, { none: cycle("none"), nat: cycle("nat") });
    // Create alone: the order alternates by round, and each destroy is
    // followed by a pause longer than a spare's refill delay, so neither
    // contender meets the other's clean-up or a refill.
    const creates: Record<string, number[]> = { none: [], nat: [] };
    for (let i = 0; i < runs; i++) {
      for (const network of i % 2 ? (["nat", "none"] as const) : (["none", "nat"] as const)) {
        const t0 = performance.now();
        const sb = await s.create({ template: "busybox", network });
        creates[network]!.push(performance.now() - t0);
        await s.destroy(sb.id);
        await new Promise((r) => setTimeout(r, 150));
      }
    }
    // A claim from a warm pool (in this process, as corrald claims), each pool refilled between rounds.
    const claims: Record<string, number[]> = { none: [], nat: [] };
    const keys = { none: s.pools.set("busybox", {}, 1, "container", "none").key, nat: s.pools.set("busybox", {}, 1, "container", "nat").key };
    try {
      for (let i = 0; i < runs; i++) {
        await s.refillPools();
        for (const network of ["none", "nat"] as const) {
          const t0 = performance.now();
          const sb = await s.create({ template: "busybox", network });
          claims[network]!.push(performance.now() - t0);
          await s.destroy(sb.id);
        }
      }
      const hits = s.pools.list().filter((p) => p.key === keys.none || p.key === keys.nat).map((p) => p.hits);
      if (hits.some((h) => h < runs)) throw new Error(`a claim missed its pool: hits ${hits.join(", ")} of ${runs}`);
    } finally {
      s.pools.set("busybox", {}, 0, "container", "none");
      s.pools.set("busybox", {}, 0, "container", "nat");
      await s.refillPools();
    }
    const none = percentile(both["none"]!, 50);
    const noneCreate = percentile(creates["none"]!, 50);
    return [
      row("create→exec→destroy, network none", both["none"]!),
      row("create→exec→destroy, network nat", both["nat"]!, none),
      row("create alone, network none", creates["none"]!),
      row("create alone, network nat", creates["nat"]!, noneCreate),
      row("claim from a warm pool, network none", claims["none"]!),
      row("claim from a warm pool, network nat", claims["nat"]!, percentile(claims["none"]!, 50)),
    ];
  } finally {
    await s.destroy(keep.id);
  }
}

/** wrk against a busybox httpd in a nat sandbox: directly (its address) and through the daemon's port proxy; `key` is the local tenant's. */
export async function benchPortProxy(s: Sandboxes, daemonUrl: string, key: string, seconds = 5): Promise<string[]> {
  if (!(await haveCommand("wrk"))) return ["| port proxy | wrk not installed | | | |"];
  const sb = await s.create({ template: "busybox", network: "nat" });
  try {
    const out: Buffer[] = [];
    await s.exec(sb.id, { cmd: "mkdir -p /www && echo hello > /www/index.html && (httpd -p 8000 -h /www &) && hostname -i" }, { onStdout: (b) => out.push(b) });
    const addr = Buffer.concat(out).toString().trim();
    const port = new URL(daemonUrl).port;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-wrk-"));
    const script = path.join(dir, "proxy.lua");
    fs.writeFileSync(script, `wrk.headers["Host"] = "8000-${sb.id}.localhost:${port}"\nwrk.headers["Authorization"] = "Bearer ${key}"\n`);
    const wrk = async (url: string, extra: string[]) => {
      const { stdout } = await runCommand("wrk", ["-t1", "-c8", `-d${seconds}s`, "--latency", ...extra, url]);
      if (/Non-2xx or 3xx responses/.test(stdout)) throw new Error(`wrk saw errors:\n${stdout}`);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN);
      const p50 = /^\s*50%\s+([\d.]+)(us|ms|s)/m.exec(stdout);
      const ms = p50 ? Number(p50[1]) * (p50[2] === "us" ? 0.001 : p50[2] === "s" ? 1000 : 1) : NaN;
      return { rps, ms };
    };
    try {
      // Interleaved rounds: the two see the same host load.
      const direct: { rps: number; ms: number }[] = [];
      const proxied: { rps: number; ms: number }[] = [];
      for (let i = 0; i < 2; i++) {
        direct.push(await wrk(`http://${addr}:8000/index.html`, []));
        proxied.push(await wrk(`http://127.0.0.1:${port}/index.html`, ["-s", script]));
      }
      const best = (xs: { rps: number; ms: number }[]) => xs.reduce((a, b) => (b.rps > a.rps ? b : a));
      const d = best(direct);
      const p = best(proxied);
      return [
        `| busybox httpd in a sandbox, direct (its address) | ${d.rps.toFixed(0)} req/s | p50 ${d.ms.toFixed(2)} ms | 1.00× |`,
        `| the same through the daemon's port proxy (agent TCP stream) | ${p.rps.toFixed(0)} req/s | p50 ${p.ms.toFixed(2)} ms | ${(p.rps / d.rps).toFixed(2)}× |`,
      ];
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await s.destroy(sb.id);
  }
}

export function networkTable(create: string[], proxy: string[]): string {
  return [
    "| network | runs | p50 ms | p95 ms | p50 over none |",
    "|---|---|---|---|---|",
    ...create,
    "",
    "| port proxy (wrk, 8 connections, best of 2 interleaved rounds) | requests/s | latency | vs direct |",
    "|---|---|---|---|",
    ...proxy,
  ].join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { benchState } = await import("./state.js");
  const { startDaemon } = await import("../src/server/daemon.js");
  const { pino } = await import("pino");
  const { s, cgroupParent, dispose } = await benchState("benchnet", { network: BENCH_NETWORK });
  try {
    await s.store.ensureTemplate("busybox");
    const create = await benchNetworkCreate(s, Number(process.env["CORRAL_BENCH_RUNS"] ?? 30));
    const d = await startDaemon({ stateDir: s.stateDir, cgroupParent, listen: { port: 0 }, logger: pino({ level: "silent" }), network: BENCH_NETWORK });
    try {
      // The sandboxes are the local tenant's (made through the library): its key.
      const key = s.tenants.createKey(LOCAL_TENANT).key;
      console.log(networkTable(create, await benchPortProxy(s, d.url, key)));
    } finally {
      await d.close();
    }
  } finally {
    await dispose();
  }
}
