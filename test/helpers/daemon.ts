import http from "node:http";
import { startDaemon, type Daemon, type DaemonOptions } from "../../src/server/daemon.js";
import { pino } from "pino";
import type { TestState } from "./state.js";

/** A real daemon on loopback over a suite's state dir, checking its responses against the spec. */
export function testDaemon(t: TestState, extra: Partial<DaemonOptions> = {}): Promise<Daemon> {
  return startDaemon({
    stateDir: t.stateDir,
    cgroupParent: t.cgroupParent,
    listen: { host: "127.0.0.1", port: 0 },
    logger: pino({ level: process.env["CORRAL_TEST_LOG"] ?? "silent" }),
    validateResponses: true,
    reapIntervalMs: 200,
    network: t.network,
    ...extra,
  });
}

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

/** One HTTP request with node:http (no client-side magic), body as given. */
export function request(
  base: string,
  method: string,
  path: string,
  opts: { key?: string; json?: unknown; body?: Buffer | string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.key) headers["authorization"] = `Bearer ${opts.key}`;
    let body: Buffer | string | undefined = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers["content-type"] = "application/json";
    }
    const req = http.request(new URL(path, base), { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** POST /v1/sandboxes/{id}/exec: the HTTP status, the exit code and the stdout of its event stream. */
export async function httpExec(url: string, key: string, id: string, cmd: string): Promise<{ status: number; exitCode: number | undefined; exit: Record<string, unknown> | undefined; stdout: string }> {
  const r = await request(url, "POST", `/v1/sandboxes/${id}/exec`, { key, json: { cmd } });
  if (r.status !== 200) return { status: r.status, exitCode: undefined, exit: undefined, stdout: r.text };
  const events = r.text.trim().split("\n").map((l) => JSON.parse(l) as { type: string; data?: string; exitCode?: number });
  const exit = events.find((e) => e.type === "exit");
  return {
    status: r.status,
    exitCode: exit?.exitCode,
    exit: exit ?? events.at(-1),
    stdout: events.filter((e) => e.type === "stdout").map((e) => Buffer.from(e.data ?? "", "base64").toString()).join(""),
  };
}
