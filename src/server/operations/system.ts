import { CorralError } from "../../core/errors.js";
import { ok, requireAdmin, type Operations } from "./types.js";

export const VERSION = "0.1.0";

/** The daemon itself: liveness, metrics, and the WebSocket's own path. */
export const systemOperations: Operations = {
  async health() {
    return ok({ status: "ok", version: VERSION });
  },

  // Tenants' names and counts: an admin tenant's key, unless the operator opted out (issue 18).
  async metrics(ctx, req) {
    if (!ctx.publicMetrics) requireAdmin(ctx, req, "read the metrics (they name every tenant)");
    const m = await ctx.metrics();
    return { status: 200, type: m.type, body: m.text };
  },

  // Reached only without an Upgrade header (connect.ts takes upgrades before routing).
  async connect() {
    throw new CorralError("upgrade_required", "/v1/connect is a WebSocket: connect with Upgrade: websocket (RFC 6455)", 426);
  },
};
