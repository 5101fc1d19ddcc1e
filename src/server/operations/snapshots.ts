import type { SnapshotInfo } from "../../runtime/sandboxes.js";
import { sandboxJson } from "../context.js";
import { created, noContent, ok, param, scopeOf, type Operations } from "./types.js";

function snapshotJson(x: SnapshotInfo) {
  return { name: x.name, source: x.source, backend: "vm", template: x.spec.template, bytes: x.bytes, createdAt: x.createdAt, spec: x.spec };
}

/** Snapshots of microVM sandboxes, per tenant: save, list, delete, restore into a new sandbox. */
export const snapshotOperations: Operations = {
  async snapshotSandbox(ctx, req) {
    const { name } = req.body as { name: string };
    const snap = await ctx.sandboxes.snapshot(param(req, "id"), name, scopeOf(req));
    req.log.info({ sandbox: param(req, "id"), snapshot: name, bytes: snap.bytes, tenant: req.tenant }, "snapshot saved");
    return created(snapshotJson(snap));
  },

  async listSnapshots(ctx, req) {
    return ok({ snapshots: ctx.sandboxes.listSnapshots(scopeOf(req)).map(snapshotJson) });
  },

  async deleteSnapshot(ctx, req) {
    await ctx.sandboxes.deleteSnapshot(param(req, "name"), scopeOf(req));
    return noContent;
  },

  async restoreSnapshot(ctx, req) {
    ctx.creates.take(req.tenant);
    const body = (req.body ?? {}) as { name?: string };
    const sb = await ctx.sandboxes.restoreSnapshot(param(req, "name"), { ...scopeOf(req), ...(body.name ? { name: body.name } : {}) });
    req.sandbox = sb.id;
    req.log.info({ sandbox: sb.id, snapshot: param(req, "name"), tenant: req.tenant }, "sandbox restored");
    return created(sandboxJson(sb));
  },
};
