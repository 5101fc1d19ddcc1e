import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../cli/main.js");

/**
 * Runs `corral daemon` as a child process on a free loopback port and
 * resolves with its URL once it listens (benchmarks and restart tests, which
 * need the daemon in a process of its own to measure it or to SIGKILL it).
 */
export async function spawnDaemon(stateDir: string, env: NodeJS.ProcessEnv = {}, args: readonly string[] = []): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [CLI, "--state-dir", stateDir, "daemon", "--listen", "127.0.0.1:0", ...args], {
    env: { ...process.env, CORRAL_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.once("exit", (code) => reject(new Error(`corrald exited (${code}) before listening: ${out}`)));
  });
  return { proc, url };
}
