import { InvalidArgumentError } from "../../core/errors.js";
import { networkPolicy, type NetworkInput } from "../../core/network-spec.js";
import { sandboxJson } from "../context.js";
import { templateJson } from "./templates.js";
import { created, noContent, ok, param, scopeOf, requireAdmin, type Operations } from "./types.js";

/** Sandboxes: their lifecycle, and a persistent one's writable layer made a template. */
export const sandboxOperations: Operations = {
  async createSandbox(ctx, req) {
    // The spec is checked here, by parseSpec (zod), as for the library: one message per mistake.
    const body = req.body as Record<string, unknown> | null;
    ctx.creates.take(req.tenant);
    const spec = ctx.defaultNetwork && body && typeof body === "object" && body["network"] === undefined ? { ...body, network: ctx.defaultNetwork } : req.body;
    const sb = await ctx.sandboxes.create(spec, scopeOf(req));
    req.sandbox = sb.id;
    req.log.info({ sandbox: sb.id, tenant: req.tenant, template: sb.spec.template }, "sandbox created");
    return created(sandboxJson(sb));
  },

  async listSandboxes(ctx, req) {
    const labels: Record<string, string> = {};
    for (const l of (req.query["label"] ?? []) as string[]) {
      const i = l.indexOf("=");
      if (i <= 0) throw new InvalidArgumentError(`label filters are key=value, got ${JSON.stringify(l)}`);
      labels[l.slice(0, i)] = l.slice(i + 1);
    }
    return ok({ sandboxes: (await ctx.sandboxes.list({ ...scopeOf(req), labels })).map(sandboxJson) });
  },

  async getSandbox(ctx, req) {
    const sb = await ctx.sandboxes.get(param(req, "id"), scopeOf(req));
    req.sandbox = sb.id;
    return ok(sandboxJson(sb));
  },

  async deleteSandbox(ctx, req) {
    await ctx.sandboxes.destroy(param(req, "id"), scopeOf(req), "deleted through the API");
    return noContent;
  },

  async sandboxLogs(ctx, req) {
    return { status: 200, type: "text/plain; charset=utf-8", body: await ctx.sandboxes.logs(param(req, "id"), scopeOf(req)) };
  },

  async sandboxStats(ctx, req) {
    return ok(await ctx.sandboxes.stats(param(req, "id"), scopeOf(req)));
  },

  async setSandboxTimeout(ctx, req) {
    const { timeoutSeconds } = req.body as { timeoutSeconds: number | null };
    return ok(sandboxJson(ctx.sandboxes.setTimeout(param(req, "id"), timeoutSeconds, scopeOf(req))));
  },

  async stopSandbox(ctx, req) {
    return ok(sandboxJson(await ctx.sandboxes.stop(param(req, "id"), scopeOf(req))));
  },

  async startSandbox(ctx, req) {
    return ok(sandboxJson(await ctx.sandboxes.start(param(req, "id"), scopeOf(req))));
  },

  async promoteSandbox(ctx, req) {
    return ok(sandboxJson(ctx.sandboxes.promote(param(req, "id"), scopeOf(req))));
  },

  async updateSandbox(ctx, req) {
    const { network } = req.body as { network: NetworkInput };
    const r = await ctx.sandboxes.setNetwork(param(req, "id"), network, scopeOf(req));
    req.sandbox = r.id;
    return ok(sandboxJson(await ctx.sandboxes.get(r.id, scopeOf(req))));
  },

  async sandboxPort(ctx, req) {
    const r = ctx.sandboxes.record(param(req, "id"), scopeOf(req));
    req.sandbox = r.id;
    const port = Number(req.params["port"]);
    const proxy = ctx.portProxy;
    if (!proxy) throw new InvalidArgumentError("this daemon serves no ports");
    const url = proxy.url(r.id, port);
    const token = proxy.token(r.id);
    const isPublic = networkPolicy(r.spec.network).ports.some((p) => p.port === port && p.public);
    return ok({ port, url, public: isPublic, token, tokenUrl: `${url}?corral_token=${token}` });
  },

  async commitSandbox(ctx, req) {
    requireAdmin(ctx, req, "make templates");
    const { template } = req.body as { template: string };
    const t = await ctx.sandboxes.commit(param(req, "id"), template, scopeOf(req));
    req.log.info({ sandbox: param(req, "id"), template: t.name, tenant: req.tenant }, "sandbox committed");
    return created(await templateJson(ctx.sandboxes.store, t.name));
  },
};
