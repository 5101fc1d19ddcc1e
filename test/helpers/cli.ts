import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TestState } from "./state.js";

/** dist/src/cli/main.js, the `corral` command. */
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/cli/main.js");

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment that makes `corral` act on a test's own state dir and cgroup parent. */
export function localEnv(t: Pick<TestState, "stateDir" | "cgroupParent">): NodeJS.ProcessEnv {
  // No daemon from the caller's environment: the state dir.
  return { CORRAL_STATE_DIR: t.stateDir, CORRAL_CGROUP_PARENT: t.cgroupParent, CORRAL_API_URL: "" };
}

/** Runs `corral ARGS` against a test's own state dir and cgroup parent. */
export function corralCli(t: Pick<TestState, "stateDir" | "cgroupParent">, ...args: string[]): Promise<CliResult> {
  return runCli(["--state-dir", t.stateDir, ...args], { CORRAL_CGROUP_PARENT: t.cgroupParent });
}

/** Runs `corral ARGS` through a daemon (remote mode, the SDK underneath); nothing may fall back to a state dir (this one does not exist). */
export function corralRemote(apiUrl: string, apiKey: string, ...args: string[]): Promise<CliResult> {
  return runCli(args, { CORRAL_API_URL: apiUrl, CORRAL_API_KEY: apiKey, CORRAL_STATE_DIR: "/nonexistent/corral" });
}

/** Starts `corral ARGS` with `env` over this process's, its stdio piped; the caller reads (or does not read) its output. */
export function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("error", reject);
    c.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
