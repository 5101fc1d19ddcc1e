// The corral command's own cost: `corral --help` (start-up, the command
// table, help) and `corral exec NAME -- /bin/true` through a daemon (the
// SDK's path: one GET and one exec over HTTP), each a fresh process as a
// user runs it (bin/corral), against bare `node -e 0` and, for scale,
// `crun run` and `podman run`, all interleaved. Used by bench/main.ts;
// `node dist/bench/cli.js` runs the node and corral rows alone.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runCommand } from "../src/host/command.js";
import { spawnDaemon } from "../src/server/spawn.js";
import { percentile, timeInterleaved } from "./stats.js";
import { benchState } from "./state.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CORRAL = path.join(root, "bin", "corral");

/** Targets (issue 13's acceptance), read from the p50 minus node -e 0's p50 in the same run. */
const TARGETS: Readonly<Record<string, number>> = { "corral --help": 30, "corral exec via corrald": 60 };

export interface CliBench {
  readonly table: string;
  /** p50 in ms by row name. */
  readonly p50: Readonly<Record<string, number>>;
}

/**
 * Times the CLI rows in `rounds` interleaved rounds with `peers` (name →
 * one run) among them. `sandbox` is a running sandbox on the daemon at
 * `apiUrl` that `apiKey`'s tenant owns.
 */
export async function benchCli(
  conn: { apiUrl: string; apiKey: string; sandbox: string },
  rounds: number,
  peers: Readonly<Record<string, () => Promise<unknown>>> = {},
): Promise<CliBench> {
  const remoteEnv = { ...process.env, CORRAL_API_URL: conn.apiUrl, CORRAL_API_KEY: conn.apiKey };
  const samples = await timeInterleaved(rounds, {
    "node -e 0 (floor)": () => runCommand(process.execPath, ["-e", "0"]),
    "corral --help": () => runCommand(CORRAL, ["--help"]),
    "corral exec via corrald": async () => {
      const r = await runCommand(CORRAL, ["exec", conn.sandbox, "--", "/bin/true"], { env: remoteEnv });
      if (r.code !== 0) throw new Error(`corral exec failed: ${r.stderr}`);
    },
    ...peers,
  });
  const p50: Record<string, number> = {};
  for (const [name, s] of Object.entries(samples)) p50[name] = percentile(s, 50);
  const floor = p50["node -e 0 (floor)"]!;
  const rows = Object.entries(samples).map(([name, s]) => {
    const over = p50[name]! - floor;
    const target = TARGETS[name];
    const verdict = target === undefined ? "" : `≤ +${target} ms: ${over <= target ? "met" : "NOT met"}`;
    return `| ${name} | ${s.length} | ${p50[name]!.toFixed(2)} | ${percentile(s, 95).toFixed(2)} | ${name.startsWith("node") ? "" : `${over >= 0 ? "+" : ""}${over.toFixed(2)}`} | ${verdict} |`;
  });
  const table = [
    "| the corral command, a new process each run (interleaved) | n | p50 ms | p95 ms | p50 − node -e 0 ms | target (p50 − node -e 0) |",
    "|---|---:|---:|---:|---:|---|",
    ...rows,
  ].join("\n");
  return { table, p50 };
}

/** Alone: a state dir, a daemon and a sandbox of its own; the node and corral rows only. */
async function alone(): Promise<void> {
  const { s, cgroupParent, dispose } = await benchState("bench-cli");
  try {
    await s.store.ensureTemplate("busybox");
    const d = await spawnDaemon(s.stateDir, { CORRAL_CGROUP_PARENT: cgroupParent });
    try {
      const apiKey = s.tenants.createKey("bench").key;
      await s.create({ template: "busybox", name: "bench-cli", lifetime: { mode: "persistent" } }, { tenant: "bench" });
      const r = await benchCli({ apiUrl: d.url, apiKey, sandbox: "bench-cli" }, Number(process.env["CORRAL_BENCH_RUNS"] ?? 50));
      console.log(r.table);
    } finally {
      d.proc.kill("SIGTERM");
      await new Promise((res) => d.proc.once("exit", res));
    }
  } finally {
    await dispose();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await alone();
