import { spawn } from "node:child_process";
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

/** Runs `corral ARGS` against a test's own state dir and cgroup parent. */
export function corralCli(t: Pick<TestState, "stateDir" | "cgroupParent">, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, "--state-dir", t.stateDir, ...args], {
      env: { ...process.env, CORRAL_CGROUP_PARENT: t.cgroupParent },
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
