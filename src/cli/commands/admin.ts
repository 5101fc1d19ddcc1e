// `corral admin`: API keys, tenants and their quotas, warm pools.
import { InvalidArgumentError } from "../../core/errors.js";
import { formatSize, parseSize } from "../../core/size.js";
import { table } from "../format.js";
import { resourcesFrom, type ResourceFlags } from "../spec-flags.js";
import { print } from "../stdio.js";
import { onStateDir } from "./action.js";

/** `admin key create --tenant T`: the key is printed once (it is stored hashed). */
export const keyCreate = onStateDir(async (s, p) => {
  await print(`${s.tenants.createKey(p.opts["tenant"] as string).key}\n`);
});

export const keyLs = onStateDir(async (s, p) => {
  const rows = s.tenants.keys(p.opts["tenant"] as string | undefined).map((k) => [k.id, k.tenant, k.createdAt, k.lastUsedAt ?? "-", k.revokedAt ? "revoked" : "active"]);
  await print(`${table(["ID", "TENANT", "CREATED", "LAST USED", "STATE"], rows)}\n`);
});

export const keyRevoke = onStateDir(async (s, p) => {
  s.tenants.revokeKey(p.args["id"] as string);
});

/** `admin pool set TEMPLATE --size N`: keep N sandboxes of that template and shape ready; prints the pool's key. */
export const poolSet = onStateDir(async (s, p) => {
  const f = p.opts as ResourceFlags & { size: string; backend: string };
  const c = s.pools.set(p.args["template"] as string, resourcesFrom(f), Number(f.size), f.backend);
  await print(`${c.key}\n`);
});

export const poolLs = onStateDir(async (s) => {
  const rows = s.pools.list().map((x) => [x.key, x.template, x.backend, formatSize(x.resources.memory), String(x.target), String(x.ready)]);
  await print(`${table(["POOL", "TEMPLATE", "BACKEND", "MEMORY", "TARGET", "READY"], rows)}\n`);
});

/** `admin pool rm KEY...`: the pool's target becomes 0; corrald removes the sandboxes it kept ready. */
export const poolRm = onStateDir(async (s, p) => {
  for (const key of p.args["pool"] as string[]) s.pools.remove(key);
});

export const tenantCreate = onStateDir(async (s, p) => {
  s.tenants.create(p.args["name"] as string, quotaFrom(p.opts));
});

export const tenantQuota = onStateDir(async (s, p) => {
  s.tenants.setQuota(p.args["name"] as string, quotaFrom(p.opts));
});

export const tenantLs = onStateDir(async (s) => {
  const rows = s.tenants.list().map((t) => [t.id, t.maxSandboxes === null ? "-" : String(t.maxSandboxes), t.maxMemory === null ? "-" : formatSize(t.maxMemory)]);
  await print(`${table(["TENANT", "MAX SANDBOXES", "MAX MEMORY"], rows)}\n`);
});

function quotaFrom(f: { maxSandboxes?: unknown; maxMemory?: unknown }): { maxSandboxes?: number | null; maxMemory?: number | null } {
  const q: { maxSandboxes?: number | null; maxMemory?: number | null } = {};
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
