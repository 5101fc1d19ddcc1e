import type { Sandboxes } from "../../runtime/sandboxes.js";
import type { AdminSide } from "./admin.js";

/** The admin commands on the state dir, through the runtime: how the first key (an admin tenant's) is made. */
export function local(s: Sandboxes): AdminSide {
  return {
    createKey: async (tenant) => s.tenants.createKey(tenant).key,
    keys: async (tenant) => s.tenants.keys(tenant),
    revokeKey: async (id) => s.tenants.revokeKey(id),
    createTenant: async (name, quota) => void s.tenants.create(name, quota),
    setQuota: async (name, quota) => void s.tenants.setQuota(name, quota),
    tenants: async () => s.tenants.list().map((t) => ({ name: t.id, maxSandboxes: t.maxSandboxes, maxMemory: t.maxMemory })),
    setPool: async (template, resources, size, backend, network) => s.pools.set(template, resources, size, backend, network).key,
    pools: async () => s.pools.list(),
    removePool: async (key) => s.pools.remove(key),
  };
}
