import type { components } from "./api-types.js";
import { resolveConfig, type ConnectionOpts } from "./config.js";
import { Http } from "./http.js";

export type TenantInfo = components["schemas"]["Tenant"];
export type ApiKeyInfo = components["schemas"]["ApiKey"];
export interface NewApiKey {
  id: string;
  tenant: string;
  /** `crl_<id>_<secret>`: shown this once, the daemon keeps only its hash. */
  key: string;
}
export interface Quota {
  /** Most sandboxes at once; null: no limit. */
  maxSandboxes?: number | null | undefined;
  /** Most memory summed over its sandboxes: bytes or a size such as "8G"; null: no limit. */
  maxMemory?: number | string | null | undefined;
}

/** Tenants and their quotas (admin tenants' keys only). */
export class Tenants {
  static async list(opts: ConnectionOpts = {}): Promise<TenantInfo[]> {
    return (await new Http(resolveConfig(opts)).json("get", "/v1/tenants", {})).tenants;
  }

  /** Sets a tenant's quotas, creating it if new; a quota left out is kept. */
  static async setQuota(name: string, quota: Quota, opts: ConnectionOpts = {}): Promise<TenantInfo> {
    const json: { maxSandboxes?: number | null; maxMemory?: number | string | null } = {};
    if (quota.maxSandboxes !== undefined) json.maxSandboxes = quota.maxSandboxes;
    if (quota.maxMemory !== undefined) json.maxMemory = quota.maxMemory;
    return new Http(resolveConfig(opts)).json("put", "/v1/tenants/{name}", { path: { name }, json });
  }
}

/** API keys (admin tenants' keys only). */
export class Keys {
  /** A new key for a tenant (created if new). */
  static async create(tenant: string, opts: ConnectionOpts = {}): Promise<NewApiKey> {
    return new Http(resolveConfig(opts)).json("post", "/v1/keys", { json: { tenant } });
  }

  /** Keys, oldest first (never the keys themselves); only `tenant`'s if given. */
  static async list(opts: ConnectionOpts & { tenant?: string | undefined } = {}): Promise<ApiKeyInfo[]> {
    return (await new Http(resolveConfig(opts)).json("get", "/v1/keys", opts.tenant !== undefined ? { query: { tenant: opts.tenant } } : {})).keys;
  }

  /** Revokes a key by its id, on every connection at once. */
  static async revoke(id: string, opts: ConnectionOpts = {}): Promise<void> {
    await new Http(resolveConfig(opts)).json("delete", "/v1/keys/{id}", { path: { id } });
  }
}
