// API throughput: corrald in its own process, a 16-client keep-alive load
// from this one. Used by bench/main.ts.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import { runCommand, haveCommand } from "../src/host/command.js";
import path from "node:path";

/** GET `path` with the key over a kept-alive node:http connection; the body as text (non-2xx throws). */
export function get(url: string, target: string, key: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(target, url), { agent: keepAlive, headers: { authorization: `Bearer ${key}` } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => ((res.statusCode ?? 0) >= 300 ? reject(new Error(`GET ${target}: ${res.statusCode} ${body}`)) : resolve(body)));
    });
    req.on("error", reject);
    req.end();
  });
}
const keepAlive = new http.Agent({ keepAlive: true });

/**
 * Runs `clients` loops, each sending one request after another over a
 * shared keep-alive pool, for `seconds`; returns completed requests per
 * second and the p50/p99 latency in ms. Any non-2xx answer fails the run.
 */
export async function load(
  url: string,
  key: string,
  make: () => { method: string; path: string; body?: string },
  clients = 16,
  seconds = 5,
): Promise<{ perSecond: number; p50: number; p99: number; count: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const latencies: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const r = make();
      const t0 = process.hrtime.bigint();
      const req = http.request(
        new URL(r.path, url),
        { method: r.method, agent, headers: { authorization: `Bearer ${key}`, ...(r.body ? { "content-type": "application/json" } : {}) } },
        (res) => {
          res.resume();
          res.on("end", () => {
            if ((res.statusCode ?? 0) >= 300) reject(new Error(`${r.method} ${r.path}: ${res.statusCode}`));
            else {
              latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
              resolve();
            }
          });
        },
      );
      req.on("error", reject);
      req.end(r.body);
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  return { perSecond: latencies.length / elapsed, p50: at(50), p99: at(99), count: latencies.length };
}

export interface LoadResult {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly count: number;
  readonly tool: string;
}

/**
 * The same load through wrk (C, one thread) when installed, so the load
 * generator costs less of this 2-core machine than a Node client would;
 * otherwise `load`.
 */
export async function loadWithWrk(
  url: string,
  key: string,
  r: { method: string; path: string; body?: string },
  clients = 16,
  seconds = 5,
): Promise<LoadResult> {
  if (!(await haveCommand("wrk"))) return { ...(await load(url, key, () => r, clients, seconds)), tool: "node" };
  const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "corral-wrk-")), "req.lua");
  fs.writeFileSync(
    script,
    `wrk.method = ${JSON.stringify(r.method)}\n` +
      (r.body ? `wrk.body = ${JSON.stringify(r.body)}\nwrk.headers["Content-Type"] = "application/json"\n` : "") +
      `wrk.headers["Authorization"] = "Bearer ${key}"\n`,
  );
  try {
    const { stdout } = await runCommand("wrk", ["-t1", `-c${clients}`, `-d${seconds}s`, "--latency", "-s", script, new URL(r.path, url).toString()]);
    if (/Non-2xx or 3xx responses/.test(stdout)) throw new Error(`wrk saw errors:\n${stdout}`);
    const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
    const ms = (label: string) => {
      const m = new RegExp(`^\\s*${label}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(stdout);
      if (!m) return NaN;
      const v = Number(m[1]);
      return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
    };
    return { perSecond: num(/Requests\/sec:\s+([\d.]+)/), p50: ms("50"), p99: ms("99"), count: num(/(\d+) requests in/), tool: "wrk" };
  } finally {
    fs.rmSync(path.dirname(script), { recursive: true, force: true });
  }
}
