const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * When the API last started or finished a request. Background work (pool
 * refills) waits for a lull, so it does not hold up the requests it is
 * done for: a claim is a few milliseconds, a container start tens of them,
 * and they share one event loop and two cores.
 */
export class Activity {
  private last = Number.NEGATIVE_INFINITY;

  touch(): void {
    this.last = performance.now();
  }

  /** Resolves once no request has started or ended for `quietMs`, or after `maxWaitMs` whatever happens. */
  async lull(quietMs = 20, maxWaitMs = 250): Promise<void> {
    const deadline = performance.now() + maxWaitMs;
    for (;;) {
      const now = performance.now();
      const quietFor = now - this.last;
      if (quietFor >= quietMs || now >= deadline) return;
      await sleep(Math.max(1, Math.min(quietMs - quietFor, deadline - now)));
    }
  }
}
