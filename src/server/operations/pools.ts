import { NotFoundError } from "../../core/errors.js";
import { noContent, ok, param, requireAdmin, type Operations } from "./types.js";

/** Warm pools: every tenant may see them (a create of a pooled shape is faster); admin tenants set them. */
export const poolOperations: Operations = {
  async listPools(ctx) {
    return ok({ pools: ctx.sandboxes.pools.list() });
  },

  async setPool(ctx, req) {
    requireAdmin(ctx, req, "set pools");
    const b = req.body as { template: string; backend?: string; resources?: unknown; network?: string; size: number };
    const c = ctx.sandboxes.pools.set(b.template, b.resources ?? {}, b.size, b.backend ?? "container", b.network ?? "none");
    req.log.info({ pool: c.key, template: c.template, size: c.target, tenant: req.tenant }, "pool set");
    const pool = ctx.sandboxes.pools.list().find((p) => p.key === c.key);
    if (!pool) throw new NotFoundError("pool", c.key);
    return ok(pool);
  },

  async deletePool(ctx, req) {
    requireAdmin(ctx, req, "remove pools");
    ctx.sandboxes.pools.remove(param(req, "key"));
    req.log.info({ pool: param(req, "key"), tenant: req.tenant }, "pool emptied");
    return noContent;
  },
};
