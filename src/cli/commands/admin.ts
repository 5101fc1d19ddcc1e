// `corral admin`: API keys, tenants and their quotas, warm pools. The flags
// and the output are here; admin-local.ts acts on the state dir (how the
// first admin key is made), admin-remote.ts on a daemon (an admin tenant's
// key: corral daemon --admin-tenant NAME).
import { InvalidArgumentError } from "../../core/errors.js";
import { formatSize, parseSize } from "../../core/size.js";
import type { Context } from "../context.js";
import { table } from "../format.js";
import { resourcesFrom, type ResourceFlags } from "../spec-flags.js";
import { print } from "../stdio.js";
import type { SpecInput } from "../target.js";
import { sideOf, type Action } from "./action.js";

export interface KeyRow {
  readonly id: string;
  readonly tenant: string;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
  readonly revokedAt: string | null;
}

export interface TenantRow {
  readonly name: string;
  readonly maxSandboxes: number | null;
  readonly maxMemory: number | null;
}

export interface PoolRow {
  readonly key: string;
  readonly template: string;
  readonly backend: string;
  readonly resources: { readonly memory: number };
  readonly target: number;
  readonly ready: number;
}

/** A quota change: a field left out is kept, null lifts the limit. */
export interface Quota {
  maxSandboxes?: number | null;
  maxMemory?: number | null;
}

export interface AdminSide {
  /** A new key for `tenant` (created if new); the key itself, shown once. */
  createKey(tenant: string): Promise<string>;
  keys(tenant: string | undefined): Promise<KeyRow[]>;
  revokeKey(id: string): Promise<void>;
  createTenant(name: string, quota: Quota): Promise<void>;
  setQuota(name: string, quota: Quota): Promise<void>;
  tenants(): Promise<TenantRow[]>;
  /** Keeps `size` sandboxes of that shape ready; resolves to the pool's key. */
  setPool(template: string, resources: SpecInput["resources"], size: number, backend: string, network: string): Promise<string>;
  pools(): Promise<PoolRow[]>;
  removePool(key: string): Promise<void>;
}

const side = (ctx: Context) =>
  sideOf<AdminSide>(
    ctx,
    async () => (await import("./admin-local.js")).local,
    async () => (await import("./admin-remote.js")).remote,
  );

/** `admin key create --tenant T`: the key is printed once (it is stored hashed). */
export const keyCreate: Action = async (ctx, p) => {
  await print(`${await (await side(ctx)).createKey(p.opts["tenant"] as string)}\n`);
};

export const keyLs: Action = async (ctx, p) => {
  const keys = await (await side(ctx)).keys(p.opts["tenant"] as string | undefined);
  const rows = keys.map((k) => [k.id, k.tenant, k.createdAt, k.lastUsedAt ?? "-", k.revokedAt ? "revoked" : "active"]);
  await print(`${table(["ID", "TENANT", "CREATED", "LAST USED", "STATE"], rows)}\n`);
};

export const keyRevoke: Action = async (ctx, p) => {
  await (await side(ctx)).revokeKey(p.args["id"] as string);
};

/** `admin pool set TEMPLATE --size N`: keep N sandboxes of that template and shape ready; prints the pool's key. */
export const poolSet: Action = async (ctx, p) => {
  const f = p.opts as ResourceFlags & { size: string; backend: string; network: string };
  // Whole numbers only here (Number("") is 0); the state dir or the daemon checks the range.
  if (!/^[0-9]+$/.test(f.size)) throw new InvalidArgumentError(`--size must be a whole number, got "${f.size}"`);
  await print(`${await (await side(ctx)).setPool(p.args["template"] as string, resourcesFrom(f), Number(f.size), f.backend, f.network)}\n`);
};

export const poolLs: Action = async (ctx) => {
  const rows = (await (await side(ctx)).pools()).map((x) => [x.key, x.template, x.backend, formatSize(x.resources.memory), String(x.target), String(x.ready)]);
  await print(`${table(["POOL", "TEMPLATE", "BACKEND", "MEMORY", "TARGET", "READY"], rows)}\n`);
};

/** `admin pool rm KEY...`: the pool's target becomes 0; corrald removes the sandboxes it kept ready. */
export const poolRm: Action = async (ctx, p) => {
  const s = await side(ctx);
  for (const key of p.args["pool"] as string[]) await s.removePool(key);
};

export const tenantCreate: Action = async (ctx, p) => {
  await (await side(ctx)).createTenant(p.args["name"] as string, quotaFrom(p.opts));
};

export const tenantQuota: Action = async (ctx, p) => {
  await (await side(ctx)).setQuota(p.args["name"] as string, quotaFrom(p.opts));
};

export const tenantLs: Action = async (ctx) => {
  const rows = (await (await side(ctx)).tenants()).map((t) => [t.name, t.maxSandboxes === null ? "-" : String(t.maxSandboxes), t.maxMemory === null ? "-" : formatSize(t.maxMemory)]);
  await print(`${table(["TENANT", "MAX SANDBOXES", "MAX MEMORY"], rows)}\n`);
};

function quotaFrom(f: { maxSandboxes?: unknown; maxMemory?: unknown }): Quota {
  const q: Quota = {};
  if (typeof f.maxSandboxes === "string") {
    q.maxSandboxes = f.maxSandboxes === "none" ? null : Number(f.maxSandboxes);
    if (q.maxSandboxes !== null && !(Number.isInteger(q.maxSandboxes) && q.maxSandboxes >= 0)) {
      throw new InvalidArgumentError(`--max-sandboxes must be a whole number or none, got "${f.maxSandboxes}"`);
    }
  }
  if (typeof f.maxMemory === "string") {
    const bytes = f.maxMemory === "none" ? null : parseSize(f.maxMemory);
    if (bytes === undefined) throw new InvalidArgumentError(`--max-memory must be a size like 8G or none, got "${f.maxMemory}"`);
    q.maxMemory = bytes;
  }
  return q;
}
