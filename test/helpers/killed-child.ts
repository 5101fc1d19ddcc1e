import { spawn } from "node:child_process";

/** How a helper process killed part way ended. */
export interface KilledChild {
  /** Whether it ended before the kill (it finished, or failed). */
  readonly endedBySelf: boolean;
  readonly code: number | null;
}

/**
 * Runs `node script ...args` and SIGKILLs it after `delayMs`, as a daemon
 * killed mid-operation would be; resolves once it is gone. The exit is
 * watched from the spawn, so a helper that ends first (it finished, or
 * failed) is seen too and never waited for forever. Its stdio is
 * /dev/null: what it starts (a sandbox's processes) may outlive it and
 * must not hold a pipe of ours, nor die writing to one we closed.
 */
export async function runKilledAfter(script: string, args: string[], delayMs: number): Promise<KilledChild> {
  const child = spawn(process.execPath, [script, ...args], { stdio: "ignore" });
  const gone = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const endedBySelf = await Promise.race([gone.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), delayMs))]);
  if (!endedBySelf) child.kill("SIGKILL");
  return { endedBySelf, code: await gone };
}
