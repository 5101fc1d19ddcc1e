import type { FastifyInstance } from "fastify";
import { PassThrough } from "node:stream";
import { BUILTIN_TEMPLATES } from "../../store/store.js";
import { toHttpError } from "../http-errors.js";
import type { Store } from "../../store/store.js";
import { param, type ServerContext } from "../context.js";

/** The API's view of a template. */
export async function templateJson(store: Store, name: string) {
  const t = await store.template(name);
  if (!t) return { name, built: false, source: BUILTIN_TEMPLATES.get(name)?.description ?? "" };
  const layers = await Promise.all(t.layers.map((d) => store.layer(d)));
  return { name, built: true, layers: [...t.layers], bytes: layers.reduce((a, l) => a + (l?.bytes ?? 0), 0), source: t.source };
}

export function templateRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const store = ctx.sandboxes.store;

  app.get("/v1/pools", { config: { operationId: "listPools" } }, async () => ({ pools: ctx.sandboxes.pools.list() }));

  app.get("/v1/templates", { config: { operationId: "listTemplates" } }, async () => {
    const names = new Set([...(await store.templates()).map((t) => t.name), ...BUILTIN_TEMPLATES.keys()]);
    return { templates: await Promise.all([...names].sort().map((n) => templateJson(store, n))) };
  });

  // Build progress as NDJSON, then done or error.
  app.post("/v1/templates/:name/build", { config: { operationId: "buildTemplate" } }, async (req, reply) => {
    const name = param(req, "name");
    const out = new PassThrough();
    void reply.type("application/x-ndjson").send(out);
    const line = (o: unknown) => out.write(`${JSON.stringify(o)}\n`);
    try {
      await store.ensureTemplate(name, (p) => line({ type: "progress", ...p }));
      line({ type: "done", template: await templateJson(store, name) });
    } catch (e) {
      line({ type: "error", error: toHttpError(e).body.error });
    }
    out.end();
    return reply;
  });
}
