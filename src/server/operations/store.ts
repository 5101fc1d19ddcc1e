import { ok, requireAdmin, type Operations } from "./types.js";

/** The shared layer store: its usage names every tenant's sandboxes, so both are for admin tenants. */
export const storeOperations: Operations = {
  async storeUsage(ctx, req) {
    requireAdmin(ctx, req, "see the store's usage");
    return ok(await ctx.sandboxes.diskUsage());
  },

  async gcStore(ctx, req) {
    requireAdmin(ctx, req, "collect the store's garbage");
    const r = await ctx.sandboxes.gc();
    req.log.info({ layers: r.removed.length, images: r.images.length, freedBytes: r.freedBytes, tenant: req.tenant }, "store collected");
    return ok(r);
  },
};
