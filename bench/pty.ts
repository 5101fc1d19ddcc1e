// A keystroke's round trip on a terminal: one byte written to a pty whose
// program echoes it (`cat` with the terminal in raw mode, as a shell's
// line editor does), timed until the byte is back. Contenders, one
// keystroke each per round (interleaved): the agent on the host with no
// sandbox (the floor: the same protocol and pty, no container), a
// container sandbox through the library (the CLI on the state dir), and
// through corrald with the SDK over /v1/connect (the CLI through a
// daemon) and over HTTP only. Used by bench/main.ts; `node
// dist/bench/pty.js` runs it alone.
import { spawn } from "node:child_process";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { AgentClient } from "../src/agent/client.js";
import { nativeBinary } from "../src/host/native.js";
import type { Sandboxes } from "../src/runtime/sandboxes.js";
import { spawnDaemon } from "../src/server/spawn.js";
import { Sandbox } from "../sdk/src/index.js";
import { percentile, timeInterleaved } from "./stats.js";
import { benchState } from "./state.js";

/** Target (issue 15): container keystroke echo p50 ≤ 2 ms. */
const TARGET_MS = 2;
const ECHO = ["/bin/sh", "-c", "stty raw -echo; echo ready; exec cat"];

/** A terminal under test: write one byte, resolve when it is echoed. */
class Echo {
  private waiting: (() => void) | undefined;
  private seen = "";

  constructor(private readonly write: (b: Buffer) => Promise<unknown> | void) {}

  output(b: Uint8Array): void {
    this.seen += Buffer.from(b).toString();
    if (this.waiting && this.seen.includes("x")) {
      this.seen = "";
      const w = this.waiting;
      this.waiting = undefined;
      w();
    }
  }

  async ready(): Promise<void> {
    for (let i = 0; i < 500 && !this.seen.includes("ready"); i++) await new Promise((r) => setTimeout(r, 10));
    if (!this.seen.includes("ready")) throw new Error(`the echo program did not start: ${JSON.stringify(this.seen)}`);
    this.seen = "";
  }

  key(): Promise<void> {
    const p = new Promise<void>((r) => (this.waiting = r));
    void this.write(Buffer.from("x"));
    return p;
  }
}

export interface PtyBench {
  readonly table: string;
  readonly p50: Readonly<Record<string, number>>;
}

/** Times `rounds` keystrokes per contender on a running container `sandbox` (name) that `conn`'s tenant owns. */
export async function benchPty(s: Sandboxes, conn: { apiUrl: string; apiKey: string; sandbox: string }, rounds: number): Promise<PtyBench> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-bench-pty-"));
  const agent = spawn(nativeBinary("corral-agent"), ["--socket", path.join(dir, "agent.sock")], { stdio: "ignore" });
  const closers: (() => unknown)[] = [() => agent.kill("SIGKILL"), () => fsp.rm(dir, { recursive: true, force: true })];
  try {
    const onAgent = async (client: AgentClient) => {
      const e: Echo = new Echo((b) => h.writeStdin(b));
      const h = client.exec({ argv: ECHO, pty: { rows: 24, cols: 80 } }, { onStdout: (b) => e.output(b) });
      h.result.catch(() => {}); // killed, or its connection closed, at the end
      closers.unshift(() => h.kill(9).catch(() => {}));
      await e.ready();
      return e;
    };
    const host = await AgentClient.connect(path.join(dir, "agent.sock"));
    closers.unshift(() => host.close());
    const floor = await onAgent(host);
    const lib = await s.agent(conn.sandbox, { tenant: "bench" });
    closers.unshift(() => lib.close());
    const library = await onAgent(lib);
    const viaSdk = async (transport: "auto" | "http") => {
      const sb = await Sandbox.connect(conn.sandbox, { apiUrl: conn.apiUrl, apiKey: conn.apiKey, transport });
      let e!: Echo;
      const pty = await sb.pty.create({ rows: 24, cols: 80, cmd: ECHO, onData: (b) => e.output(b) });
      e = new Echo((b) => pty.sendInput(b));
      closers.unshift(() => pty.kill().catch(() => false));
      await e.ready();
      return e;
    };
    const ws = await viaSdk("auto");
    const http = await viaSdk("http");
    const samples = await timeInterleaved(rounds, {
      "agent on the host, no sandbox (floor)": () => floor.key(),
      "container, library (CLI on the state dir)": () => library.key(),
      "container, SDK via corrald over /v1/connect (CLI via a daemon)": () => ws.key(),
      "container, SDK via corrald over HTTP only": () => http.key(),
    }, 10);
    const p50: Record<string, number> = {};
    for (const [name, x] of Object.entries(samples)) p50[name] = percentile(x, 50);
    const rows = Object.entries(samples).map(([name, x]) => {
      const verdict = name.startsWith("container") ? `≤ ${TARGET_MS} ms: ${p50[name]! <= TARGET_MS ? "met" : "NOT met"}` : "";
      return `| ${name} | ${x.length} | ${p50[name]!.toFixed(3)} | ${percentile(x, 95).toFixed(3)} | ${percentile(x, 99).toFixed(3)} | ${verdict} |`;
    });
    const table = [
      "| terminal keystroke echo round trip (one byte to `cat` on a raw pty and back; interleaved) | n | p50 ms | p95 ms | p99 ms | target (p50) |",
      "|---|---:|---:|---:|---:|---|",
      ...rows,
    ].join("\n");
    return { table, p50 };
  } finally {
    for (const c of closers) await c();
  }
}

/** Alone: a state dir, a daemon and a container of its own. */
async function alone(): Promise<void> {
  const { s, cgroupParent, dispose } = await benchState("bench-pty");
  try {
    await s.store.ensureTemplate("busybox");
    const d = await spawnDaemon(s.stateDir, { CORRAL_CGROUP_PARENT: cgroupParent });
    try {
      const apiKey = s.tenants.createKey("bench").key;
      await s.create({ template: "busybox", name: "bench-pty" }, { tenant: "bench" });
      const r = await benchPty(s, { apiUrl: d.url, apiKey, sandbox: "bench-pty" }, Number(process.env["CORRAL_BENCH_RUNS"] ?? 200));
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
