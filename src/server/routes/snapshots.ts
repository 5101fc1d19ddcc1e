import type { FastifyInstance } from "fastify";
import type { SnapshotInfo } from "../../runtime/sandboxes.js";
import { param, sandboxJson, type ServerContext } from "../context.js";

function snapshotJson(x: SnapshotInfo) {
  return { name: x.name, source: x.source, backend: "vm", template: x.spec.template, bytes: x.bytes, createdAt: x.createdAt, spec: x.spec };
}

/** Snapshots of microVM sandboxes: save, list, delete, restore into a new sandbox. */
export function snapshotRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const s = ctx.sandboxes;

  app.post("/v1/sandboxes/:id/snapshot", { config: { operationId: "snapshotSandbox" } }, async (req, reply) => {
    const { name } = req.body as { name: string };
    const snap = await s.snapshot(param(req, "id"), name, { tenant: req.tenant });
    req.log.info({ sandbox: param(req, "id"), snapshot: name, bytes: snap.bytes, tenant: req.tenant }, "snapshot saved");
    return reply.code(201).send(snapshotJson(snap));
  });

  app.get("/v1/snapshots", { config: { operationId: "listSnapshots" } }, async (req) => ({
    snapshots: s.listSnapshots({ tenant: req.tenant }).map(snapshotJson),
  }));

  app.delete("/v1/snapshots/:name", { config: { operationId: "deleteSnapshot" } }, async (req, reply) => {
    await s.deleteSnapshot(param(req, "name"), { tenant: req.tenant });
    return reply.code(204).send();
  });

  app.post("/v1/snapshots/:name/restore", { config: { operationId: "restoreSnapshot" } }, async (req, reply) => {
    const body = (req.body ?? {}) as { name?: string };
    const sb = await s.restoreSnapshot(param(req, "name"), { tenant: req.tenant, ...(body.name ? { name: body.name } : {}) });
    req.log.info({ sandbox: sb.id, snapshot: param(req, "name"), tenant: req.tenant }, "sandbox restored");
    return reply.code(201).send(sandboxJson(sb));
  });
}
