import fsp from "node:fs/promises";

/** Whether a process exists (a zombie counts: see processState). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The state letter of /proc/PID/stat (R, S, D, Z ...), or undefined when
 * the process is gone. The command name may hold spaces and parentheses,
 * so the state is read after the last ")".
 */
export async function processState(pid: number): Promise<string | undefined> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const close = stat.lastIndexOf(")");
  return close < 0 ? undefined : stat.slice(close + 2, close + 3);
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  const v = Number(stat.slice(close + 2).split(" ")[19]);
  return Number.isFinite(v) ? v : undefined;
}

/** Running, not a zombie: a dead process whose parent has not reaped it holds nothing. */
export async function processRunning(pid: number): Promise<boolean> {
  const s = await processState(pid);
  return s !== undefined && s !== "Z" && s !== "X";
}

export function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}
