import { networkMode } from "../core/network-spec.js";
import type { ResolvedSpec } from "../core/sandbox-spec.js";
import type { RuntimeContext } from "./context.js";
import { POOL_TENANT } from "./pools.js";
import { defaultName, expiryFrom, type SandboxInfo, type SandboxRecord } from "./records.js";

/**
 * Takes a ready sandbox out of a pool for a tenant. The oldest one is
 * checked alive first (a pooled sandbox that died is removed and the next
 * one tried), then changes hands in one write transaction with the quota
 * check and the event (SandboxRows.claim): the row leaves the pool
 * (pool_key cleared) only if it is still there, so no sandbox is handed
 * out twice, and a pooled sandbox is never returned to a pool. One commit
 * per claim, not three.
 */
export async function claim(rt: RuntimeContext, key: string, spec: ResolvedSpec, tenant: string): Promise<SandboxInfo | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    // Skips the candidates other claims in this process are checking.
    const pooled = rt.rows.poolCandidates(key, rt.claiming.size + 1).find((r) => !rt.claiming.has(r.id));
    if (!pooled) return undefined;
    rt.claiming.add(pooled.id);
    try {
      if ((await rt.handle(pooled).status()) !== "running") {
        await rt.remove(pooled.id, POOL_TENANT, "pooled sandbox found dead at claim", pooled.spec);
        continue;
      }
      const now = new Date();
      const r: SandboxRecord = {
        ...pooled,
        tenant,
        name: spec.name ?? defaultName(pooled.id),
        spec,
        createdAt: now.toISOString(),
        expiresAt: expiryFrom(now, spec.lifetime.timeoutSeconds),
      };
      if (rt.rows.claim(r, key)) {
        // The claimant's egress policy and named networks, before anyone can use it.
        if (networkMode(spec.network) === "nat") {
          await rt.parts.net?.update(r.id, { tenant, name: r.name, network: spec.network }).catch(async (e: unknown) => {
            await rt.remove(r.id, tenant, "network policy failed at claim", spec).catch(() => {});
            throw e;
          });
        }
        if (r.name !== defaultName(r.id)) rt.conns.rename(r);
        return rt.info(r, "running");
      }
    } finally {
      rt.claiming.delete(pooled.id);
    }
  }
  return undefined;
}

/**
 * Brings every pool to its target: starts what is missing (one at a
 * time, with `create`), removes ready sandboxes beyond it. The daemon
 * calls this on a timer; returns how many it started and removed.
 * `beforeStart` is awaited before each start (the daemon waits there for a
 * lull in its requests, so a refill does not slow the claims it refills
 * for).
 */
export async function refillPools(
  rt: RuntimeContext,
  create: (input: unknown, opts: { pool: string }) => Promise<unknown>,
  opts: { beforeStart?: () => Promise<void> } = {},
): Promise<{ started: number; removed: number }> {
  let started = 0;
  let removed = 0;
  for (const c of rt.pools.configs()) {
    const waiting = rt.pools.waiting(c.key);
    for (let n = waiting.length; n < c.target; n++) {
      await opts.beforeStart?.();
      await create({ template: c.template, backend: c.backend, resources: c.resources, network: c.network }, { pool: c.key });
      started++;
    }
    for (const extra of waiting.filter((w) => w.state === "running").slice(c.target)) {
      await rt.remove(extra.id, POOL_TENANT, "pool shrunk");
      removed++;
    }
  }
  return { started, removed };
}
