import type { FastifyInstance } from "fastify";
import { InvalidArgumentError } from "../../core/errors.js";
import { param, sandboxJson, type ServerContext } from "../context.js";

export function sandboxRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const s = ctx.sandboxes;

  app.post("/v1/sandboxes", { config: { operationId: "createSandbox" } }, async (req, reply) => {
    const sb = await s.create(req.body, { tenant: req.tenant });
    req.log.info({ sandbox: sb.id, tenant: req.tenant, template: sb.spec.template }, "sandbox created");
    return reply.code(201).send(sandboxJson(sb));
  });

  app.get("/v1/sandboxes", { config: { operationId: "listSandboxes" } }, async (req) => {
    const raw = (req.query as Record<string, unknown>)["label"];
    const list = raw === undefined ? [] : Array.isArray(raw) ? raw.map(String) : [String(raw)];
    const labels: Record<string, string> = {};
    for (const l of list) {
      const i = l.indexOf("=");
      if (i <= 0) throw new InvalidArgumentError(`label filters are key=value, got ${JSON.stringify(l)}`);
      labels[l.slice(0, i)] = l.slice(i + 1);
    }
    return { sandboxes: (await s.list({ tenant: req.tenant, labels })).map(sandboxJson) };
  });

  app.get("/v1/sandboxes/:id", { config: { operationId: "getSandbox" } }, async (req) => sandboxJson(await s.get(param(req, "id"), { tenant: req.tenant })));

  app.delete("/v1/sandboxes/:id", { config: { operationId: "deleteSandbox" } }, async (req, reply) => {
    await s.destroy(param(req, "id"), { tenant: req.tenant }, "deleted through the API");
    return reply.code(204).send();
  });

  app.get("/v1/sandboxes/:id/logs", { config: { operationId: "sandboxLogs" } }, async (req, reply) =>
    reply.type("text/plain; charset=utf-8").send(await s.logs(param(req, "id"), { tenant: req.tenant })),
  );

  app.get("/v1/sandboxes/:id/stats", { config: { operationId: "sandboxStats" } }, async (req) => s.stats(param(req, "id"), { tenant: req.tenant }));

  app.post("/v1/sandboxes/:id/timeout", { config: { operationId: "setSandboxTimeout" } }, async (req) => {
    const { timeoutSeconds } = req.body as { timeoutSeconds: number | null };
    const r = s.setTimeout(param(req, "id"), timeoutSeconds, { tenant: req.tenant });
    return sandboxJson(r);
  });

  app.post("/v1/sandboxes/:id/stop", { config: { operationId: "stopSandbox" } }, async (req) =>
    sandboxJson(await s.stop(param(req, "id"), { tenant: req.tenant })),
  );

  app.post("/v1/sandboxes/:id/start", { config: { operationId: "startSandbox" } }, async (req) =>
    sandboxJson(await s.start(param(req, "id"), { tenant: req.tenant })),
  );

  app.post("/v1/sandboxes/:id/promote", { config: { operationId: "promoteSandbox" } }, async (req) =>
    sandboxJson(s.promote(param(req, "id"), { tenant: req.tenant })),
  );
}
