import { CorralError } from "../core/errors.js";

/** How fast each tenant may start sandboxes: `perSecond` on average, `burst` at once. */
export interface CreateRate {
  readonly perSecond: number;
  readonly burst: number;
}

/**
 * A token bucket per tenant for sandbox starts (create, restore): a tenant
 * with no quota made 200 sandboxes in one burst, load 6 on 2 cores (issue
 * 18). A tenant over it gets 429 rate_limited saying when to try again.
 * Buckets that have refilled are forgotten, so the map holds only tenants
 * that created within the last `burst / perSecond` seconds.
 */
export class CreateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly rate: CreateRate | undefined) {}

  take(tenant: string, now = Date.now()): void {
    const r = this.rate;
    if (!r) return;
    const b = this.buckets.get(tenant) ?? { tokens: r.burst, at: now };
    b.tokens = Math.min(r.burst, b.tokens + ((now - b.at) / 1000) * r.perSecond);
    b.at = now;
    if (b.tokens < 1) {
      const wait = Math.ceil((1 - b.tokens) / r.perSecond);
      throw new CorralError("rate_limited", `tenant "${tenant}" starts sandboxes faster than this daemon allows (${r.perSecond}/s, bursts of ${r.burst}); try again in ${wait} s`, 429);
    }
    b.tokens -= 1;
    this.buckets.set(tenant, b);
    if (this.buckets.size > 1024) {
      for (const [t, x] of this.buckets) if (x.tokens + ((now - x.at) / 1000) * r.perSecond >= r.burst) this.buckets.delete(t);
    }
  }
}
