/** Percentile (nearest rank) of a sample, in the sample's unit. */
export function percentile(sample: readonly number[], p: number): number {
  if (sample.length === 0) return NaN;
  const sorted = [...sample].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Times `fn` `n` times (after `warmup` untimed runs); returns milliseconds. */
export async function timeRuns(n: number, fn: () => Promise<unknown>, warmup = 3): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

/**
 * Times several contenders in rounds, each round running every contender
 * once in turn, so that all of them meet the same machine noise (this host
 * is a nested VM whose speed drifts by tens of percent over seconds).
 * Returns milliseconds per contender.
 */
export async function timeInterleaved(
  rounds: number,
  contenders: Readonly<Record<string, () => Promise<unknown>>>,
  warmup = 2,
): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of Object.keys(contenders)) out[name] = [];
  for (let r = -warmup; r < rounds; r++) {
    for (const [name, fn] of Object.entries(contenders)) {
      const t0 = process.hrtime.bigint();
      await fn();
      if (r >= 0) out[name]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  return out;
}
