import { ConflictError, Keys, NotFoundError, Pools, Tenants, type PoolSpec } from "../../../sdk/src/index.js";
import type { Connection } from "../context.js";
import type { AdminSide } from "./admin.js";

/**
 * The admin commands on a daemon, through the SDK; all but `pool ls` take
 * an admin tenant's key (the daemon answers 403 to others).
 */
export function remote(conn: Connection): AdminSide {
  /** Whether the daemon has tenant `name`; the API sets quotas by PUT, creating a tenant that is new. */
  const has = async (name: string) => (await Tenants.list(conn)).some((t) => t.name === name);
  return {
    createKey: async (tenant) => (await Keys.create(tenant, conn)).key,
    keys: (tenant) => Keys.list({ ...conn, tenant }),
    revokeKey: (id) => Keys.revoke(id, conn),
    async createTenant(name, quota) {
      // As on the state dir: create refuses a tenant that exists, quota one that does not.
      // (Between the look and the PUT another admin may create it; the PUT then sets its quota.)
      if (await has(name)) throw new ConflictError("conflict", `tenant "${name}" already exists`, 409);
      await Tenants.setQuota(name, quota, conn);
    },
    async setQuota(name, quota) {
      if (!(await has(name))) throw new NotFoundError("tenant_not_found", `no tenant named "${name}"`, 404);
      await Tenants.setQuota(name, quota, conn);
    },
    tenants: async () => (await Tenants.list(conn)).map((t) => ({ name: t.name, maxSandboxes: t.maxSandboxes, maxMemory: t.maxMemory })),
    setPool: async (template, resources, size, backend, network) =>
      (await Pools.set({ template, resources, size, backend: backend as PoolSpec["backend"], network: network as NonNullable<PoolSpec["network"]> }, conn)).key,
    pools: () => Pools.list(conn),
    removePool: (key) => Pools.remove(key, conn),
  };
}
