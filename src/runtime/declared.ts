import fsp from "node:fs/promises";
import { createHash } from "node:crypto";
import { ConflictError, InvalidArgumentError, NotFoundError } from "../core/errors.js";
import { nixTemplateFromOutputs, outputsSource } from "../store/nix/nix-template.js";
import type { RuntimeContext } from "./context.js";
import { recordEvent, stmt } from "./db.js";
import { declaredTemplateName, type DeclaredSandbox, type DeclaredState } from "./declared-state.js";
import * as lifecycle from "./lifecycle.js";
import type { SandboxRecord } from "./records.js";

/** What one application of the declared state did, by declared name. */
export interface DeclaredReport {
  readonly created: string[];
  /** Changed and made again: a new sandbox, or (persistent, same backend) the same one restarted on its disk with the new spec. */
  readonly recreated: string[];
  /** Stopped ones started (autoStart). */
  readonly started: string[];
  /** No longer declared: removed. */
  readonly removed: string[];
  readonly unchanged: string[];
  /** Changed, left as they are (restartIfChanged false while running). */
  readonly pending: string[];
  /** Those that could not be applied, and why (the others are applied all the same). */
  readonly errors: { readonly name: string; readonly message: string }[];
}

interface Entry {
  readonly name: string;
  readonly tenant_id: string;
  readonly sandbox_id: string | null;
  readonly hash: string;
}

/** The declaration's hash: what it runs (spec, tenant, closure); autoStart and restartIfChanged are how, not what. */
function hashOf(d: DeclaredSandbox): string {
  return createHash("sha256").update(JSON.stringify([d.tenant, d.spec, d.nixOutputs ?? null])).digest("hex");
}

/**
 * Makes the host what the declared state says (`corral daemon --declared`,
 * on start and on SIGHUP), touching only what an earlier application made
 * (the `declared` table):
 *
 * - allowed shares and the default backend are set;
 * - API keys from files are registered for their tenants (and revoked once
 *   no longer declared);
 * - pools get their sizes; a pool no longer declared is emptied;
 * - a declared sandbox that is missing is created (a closure template
 *   first); a changed one is made again when restartIfChanged (or when it
 *   is not running): a persistent one of the same backend is stopped,
 *   given the new spec and started on the disk it had, any other is
 *   removed and created anew; a stopped one is started when autoStart;
 * - a sandbox an earlier application made that is no longer declared is
 *   removed. Sandboxes made through the API are never touched: a
 *   declared name one of them holds is an error for that name only.
 */
export async function applyDeclared(rt: RuntimeContext, state: DeclaredState, daemonShares: readonly string[]): Promise<DeclaredReport> {
  const report: DeclaredReport = { created: [], recreated: [], started: [], removed: [], unchanged: [], pending: [], errors: [] };
  await rt.shares.allow([...daemonShares, ...state.allowedShares]);
  rt.defaultBackend = state.defaultBackend;
  await applyKeys(rt, state);
  applyPools(rt, state);

  const entries = new Map((stmt(rt.db, "SELECT name, tenant_id, sandbox_id, hash FROM declared WHERE kind = 'sandbox'").all() as Entry[]).map((e) => [e.name, e]));
  for (const [name, d] of state.sandboxes) {
    try {
      await applySandbox(rt, name, d, entries.get(name), report);
    } catch (e) {
      report.errors.push({ name, message: (e as Error).message });
    }
  }
  for (const [name, e] of entries) {
    if (state.sandboxes.has(name)) continue;
    try {
      const r = e.sandbox_id ? recordById(rt, e.sandbox_id) : undefined;
      if (r) await rt.remove(r.id, r.tenant, "no longer declared", r.spec);
      forget(rt, "sandbox", name);
      report.removed.push(name);
    } catch (err) {
      report.errors.push({ name, message: (err as Error).message });
    }
  }
  return report;
}

async function applySandbox(rt: RuntimeContext, name: string, d: DeclaredSandbox, entry: Entry | undefined, report: DeclaredReport): Promise<void> {
  const hash = hashOf(d);
  let r = entry?.sandbox_id ? recordById(rt, entry.sandbox_id) : undefined;
  if (!r) {
    const holder = rt.rows.list(d.tenant).find((x) => x.name === name);
    if (holder) throw new ConflictError(`a sandbox named "${name}" of tenant "${d.tenant}" exists and was not made by the declaration: it is left alone; remove it, or declare another name`);
    await createDeclared(rt, name, d, hash);
    report.created.push(name);
    return;
  }
  if (entry!.hash === hash) {
    if (d.autoStart && r.state === "stopped") {
      await lifecycle.start(rt, r);
      report.started.push(name);
    } else report.unchanged.push(name);
    return;
  }
  if (!d.restartIfChanged && r.state === "running") {
    report.pending.push(name);
    return;
  }
  await ensureClosureTemplate(rt, name, d);
  const keepDisk = r.spec.lifetime.mode === "persistent" && d.spec.lifetime.mode === "persistent" && r.spec.backend === d.spec.backend && r.tenant === d.tenant;
  if (keepDisk) {
    // Before stopping it: its disk image cannot shrink (backends/disk-image.ts), the backend would refuse.
    if (d.spec.resources.disk < r.spec.resources.disk) {
      throw new ConflictError(`a persistent sandbox's disk cannot shrink: it has ${r.spec.resources.disk} bytes, the new spec asks for ${d.spec.resources.disk} (make a new sandbox for a smaller disk)`);
    }
    if (r.state === "running") {
      await lifecycle.stop(rt, r);
      r = { ...r, state: "stopped" };
    }
    await lifecycle.reconfigure(rt, r, d.spec);
    remember(rt, "sandbox", name, d.tenant, r.id, hash);
    if (d.autoStart) await lifecycle.start(rt, { ...r, spec: d.spec });
  } else {
    await rt.remove(r.id, r.tenant, "declaration changed", r.spec);
    forget(rt, "sandbox", name);
    await createDeclared(rt, name, d, hash);
  }
  recordEvent(rt.db, { tenant: d.tenant, sandbox: r.id, type: "declared_changed", detail: { name, keptDisk: keepDisk } });
  report.recreated.push(name);
}

/** Creates a declared sandbox (its closure template first), records it, and stops it or clears its expiry as declared. */
async function createDeclared(rt: RuntimeContext, name: string, d: DeclaredSandbox, hash: string): Promise<void> {
  await ensureClosureTemplate(rt, name, d);
  rt.tenants.ensure(d.tenant);
  const info = await lifecycle.create(rt, d.spec, { tenant: d.tenant });
  remember(rt, "sandbox", name, d.tenant, info.id, hash);
  // An ephemeral declared sandbox lives until it is no longer declared (its files in memory meanwhile).
  if (d.spec.lifetime.mode === "ephemeral") lifecycle.setTimeout(rt, info, null);
  if (!d.autoStart) await lifecycle.stop(rt, info);
}

/**
 * The template of a declared closure, (re)built when its outputs (or base)
 * differ from the template's. A writable store needs a nix inside: such a
 * closure stands on debian-nix.
 */
async function ensureClosureTemplate(rt: RuntimeContext, name: string, d: DeclaredSandbox): Promise<void> {
  if (!d.nixOutputs) return;
  const tpl = declaredTemplateName(name);
  const opts = d.spec.nix?.writable ? { base: "debian-nix" } : {};
  if ((await rt.store.template(tpl))?.source === outputsSource(d.nixOutputs, opts)) return;
  await nixTemplateFromOutputs(rt.store, tpl, d.nixOutputs, opts);
}

async function applyKeys(rt: RuntimeContext, state: DeclaredState): Promise<void> {
  const declared = new Set<string>();
  for (const k of state.apiKeys) {
    const text = (await fsp.readFile(k.file, "utf8").catch((e: Error) => {
      throw new InvalidArgumentError(`apiKeys: cannot read the key file of tenant "${k.tenant}": ${e.message}`);
    })).trim();
    const id = rt.tenants.importKey(k.tenant, text);
    remember(rt, "key", id, k.tenant, null, "");
    declared.add(id);
  }
  for (const { name } of stmt(rt.db, "SELECT name FROM declared WHERE kind = 'key'").all() as { name: string }[]) {
    if (declared.has(name)) continue;
    try {
      rt.tenants.revokeKey(name);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
    forget(rt, "key", name);
  }
}

function applyPools(rt: RuntimeContext, state: DeclaredState): void {
  const declared = new Set<string>();
  for (const p of state.pools) {
    const c = rt.pools.set(p.template, p.resources, p.size, p.backend);
    remember(rt, "pool", c.key, "_pool", null, "");
    declared.add(c.key);
  }
  for (const { name } of stmt(rt.db, "SELECT name FROM declared WHERE kind = 'pool'").all() as { name: string }[]) {
    if (declared.has(name)) continue;
    try {
      rt.pools.remove(name);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
    forget(rt, "pool", name);
  }
}

function recordById(rt: RuntimeContext, id: string): SandboxRecord | undefined {
  try {
    return rt.rows.find(id);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

function remember(rt: RuntimeContext, kind: string, name: string, tenant: string, sandboxId: string | null, hash: string): void {
  stmt(rt.db, "INSERT INTO declared (kind, name, tenant_id, sandbox_id, hash) VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET tenant_id = excluded.tenant_id, sandbox_id = excluded.sandbox_id, hash = excluded.hash").run(
    kind,
    name,
    tenant,
    sandboxId,
    hash,
  );
}

function forget(rt: RuntimeContext, kind: string, name: string): void {
  stmt(rt.db, "DELETE FROM declared WHERE kind = ? AND name = ?").run(kind, name);
}
