import { withPidLock } from "../host/pid-lock.js";

/**
 * A lock file for work several corral processes may start at once
 * (building the same template, an image, a kernel): a pid lock
 * (host/pid-lock.ts), taken over from a dead holder. Such work takes
 * seconds to minutes: polled every 100 ms, given up after `timeoutMs`.
 */
export function withLock<T>(file: string, fn: () => Promise<T>, timeoutMs = 30 * 60_000): Promise<T> {
  return withPidLock(file, fn, { pollMs: 100, timeoutMs });
}
