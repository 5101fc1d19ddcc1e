import fs from "node:fs";

/** Whether a process exists (a zombie counts: see procStat). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface ProcStat {
  /** R, S, D, Z ... */
  readonly state: string;
  /** Field 22: start time in clock ticks since boot (tells a recycled pid apart). */
  readonly startTime: number;
}

/**
 * /proc/PID/stat, read synchronously: procfs answers from memory, so this
 * is cheaper than a trip through libuv's thread pool. The command name may
 * hold spaces and parentheses, so fields are counted after the last ")".
 */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(" ");
  return { state: fields[0] ?? "", startTime: Number(fields[19]) };
}

/** Running, not a zombie: a dead process whose parent has not reaped it holds nothing. */
export function processRunning(pid: number): boolean {
  const s = procStat(pid)?.state;
  return s !== undefined && s !== "Z" && s !== "X";
}

export function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}
