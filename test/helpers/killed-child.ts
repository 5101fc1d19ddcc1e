import { spawn } from "node:child_process";

/** How a helper process killed part way ended. */
export interface KilledChild {
  /** Whether it ended before the kill (done, or failed: see stderr). */
  readonly endedBySelf: boolean;
  readonly code: number | null;
  /** The last of what it wrote to stderr (up to 4 KiB). */
  readonly stderr: string;
}

/**
 * Runs `node script ...args` and SIGKILLs it after `delayMs`, as a daemon
 * killed mid-operation would be; resolves once it is gone. The exit is
 * watched from the spawn, so a helper that ends first (it finished, or
 * failed) is seen too and never waited for forever.
 */
export async function runKilledAfter(script: string, args: string[], delayMs: number): Promise<KilledChild> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
  const gone = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const endedBySelf = await Promise.race([gone.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), delayMs))]);
  if (!endedBySelf) child.kill("SIGKILL");
  const code = await gone;
  return { endedBySelf, code, stderr };
}
