import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { nativeBinary } from "../../src/host/native.js";

/** A corral-agent started by startAgent: its process and its socket. */
export interface TestAgent {
  readonly proc: ChildProcess;
  readonly socket: string;
}

/**
 * A real corral-agent outside any sandbox, listening on `dir`/`socketName`
 * with `dir`/root (made here) as the root of its file operations. Resolves
 * once it said "ready" on its ready fd; rejects with what it said if it
 * ended first. The caller kills it (`proc.kill("SIGKILL")`).
 */
export async function startAgent(dir: string, socketName = "agent.sock"): Promise<TestAgent> {
  const socket = path.join(dir, socketName);
  const root = path.join(dir, "root");
  fs.mkdirSync(root, { recursive: true });
  const proc = spawn(nativeBinary("corral-agent"), ["--socket", socket, "--root", root, "--ready-fd", "3"], {
    stdio: ["ignore", "inherit", "inherit", "pipe"],
  });
  const said = await new Promise<string>((resolve) => {
    let got = "";
    proc.stdio[3]!.on("data", (c: Buffer) => {
      got += c.toString();
      if (got.includes("\n")) resolve(got);
    });
    proc.once("exit", () => resolve(got));
  });
  if (said !== "ready\n") {
    proc.kill("SIGKILL");
    throw new Error(`corral-agent did not start: it said ${JSON.stringify(said)}`);
  }
  return { proc, socket };
}
