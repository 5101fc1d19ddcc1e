import { InvalidArgumentError, NotFoundError } from "../../core/errors.js";
import { parseSize } from "../../core/size.js";
import type { Tenant } from "../../runtime/tenants.js";
import { created, noContent, ok, param, requireAdmin, type Operations } from "./types.js";

const tenantJson = (t: Tenant) => ({ name: t.id, maxSandboxes: t.maxSandboxes, maxMemory: t.maxMemory, createdAt: t.createdAt });

/** Tenants, their quotas and API keys: admin tenants only. */
export const tenantOperations: Operations = {
  async listTenants(ctx, req) {
    requireAdmin(ctx, req, "list tenants");
    return ok({ tenants: ctx.sandboxes.tenants.list().map(tenantJson) });
  },

  async setTenantQuota(ctx, req) {
    requireAdmin(ctx, req, "set quotas");
    const name = param(req, "name");
    const b = req.body as { maxSandboxes?: number | null; maxMemory?: number | string | null };
    const quota: { maxSandboxes?: number | null; maxMemory?: number | null } = {};
    if (b.maxSandboxes !== undefined) quota.maxSandboxes = b.maxSandboxes;
    if (b.maxMemory !== undefined) {
      const bytes = b.maxMemory === null ? null : parseSize(b.maxMemory);
      if (bytes === undefined) throw new InvalidArgumentError(`maxMemory must be bytes or a size like "8G", got ${JSON.stringify(b.maxMemory)}`);
      quota.maxMemory = bytes;
    }
    const tenants = ctx.sandboxes.tenants;
    let isNew = false;
    try {
      tenants.get(name);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      isNew = true;
    }
    const t = isNew ? tenants.create(name, quota) : tenants.setQuota(name, quota);
    req.log.info({ name, ...quota, created: isNew, tenant: req.tenant }, "tenant quota set");
    return isNew ? created(tenantJson(t)) : ok(tenantJson(t));
  },

  async createKey(ctx, req) {
    requireAdmin(ctx, req, "create API keys");
    const { tenant } = req.body as { tenant: string };
    const k = ctx.sandboxes.tenants.createKey(tenant);
    req.log.info({ key: k.id, for: tenant, tenant: req.tenant }, "API key created");
    return created({ id: k.id, tenant, key: k.key });
  },

  async listKeys(ctx, req) {
    requireAdmin(ctx, req, "list API keys");
    return ok({ keys: ctx.sandboxes.tenants.keys(req.query["tenant"] as string | undefined) });
  },

  async revokeKey(ctx, req) {
    requireAdmin(ctx, req, "revoke API keys");
    ctx.sandboxes.tenants.revokeKey(param(req, "id"));
    req.log.info({ key: param(req, "id"), tenant: req.tenant }, "API key revoked");
    return noContent;
  },
};
