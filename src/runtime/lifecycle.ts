import fsp from "node:fs/promises";
import { randomBytes } from "node:crypto";
import type { CreateRequest } from "../backends/backend.js";
import { ConflictError, InvalidArgumentError, InvalidSpecError } from "../core/errors.js";
import { networkMode } from "../core/network-spec.js";
import { parseSpec, type ResolvedSpec } from "../core/sandbox-spec.js";
import type { ProgressFn } from "../store/builders/builder.js";
import type { RuntimeContext } from "./context.js";
import { recordEvent } from "./db.js";
import { checkIdentityFree } from "./fixed-identity.js";
import { claim } from "./pool-claims.js";
import { sandboxStore } from "./nix-view.js";
import { POOL_TENANT, poolKey } from "./pools.js";
import { rangeBase } from "./uid-ranges.js";
import { defaultName, expiryFrom, LOCAL_TENANT, type SandboxInfo, type SandboxRecord, type Scope } from "./records.js";

export interface CreateOptions extends Scope {
  readonly onProgress?: ProgressFn;
  /** (internal) Start one to wait in this pool. */
  readonly pool?: string;
}

/**
 * Starts a sandbox: claimed from a warm pool when one of the same shape
 * has a sandbox ready, otherwise built (template first, if needed) and
 * started cold. `pool` (internal) starts one to wait in that pool.
 */
export async function create(rt: RuntimeContext, input: unknown, opts: CreateOptions = {}): Promise<SandboxInfo> {
  const spec = parseSpec(withDefaultBackend(input, rt.defaultBackend));
  const tenant = opts.pool ? POOL_TENANT : (opts.tenant ?? LOCAL_TENANT);
  // A pool's sandboxes have no shares, a read-only store and their names' identity: one with any starts cold.
  if (!opts.pool && spec.lifetime.mode === "ephemeral" && !spec.shares && !spec.nix && !spec.identity) {
    const key = poolKey(spec);
    const { pools } = rt;
    if (pools.has(key)) {
      const t0 = performance.now();
      const claimed = await claim(rt, key, spec, tenant);
      pools.record(key, claimed !== undefined, performance.now() - t0);
      if (claimed) return claimed;
    }
  }
  const backend = rt.backend(spec.backend);
  checkNetworking(rt, spec);
  checkIdentityFree(rt, spec);
  const template = await rt.store.ensureTemplate(spec.template, opts.onProgress);
  // Checked before anything is recorded or made: a refused share leaves nothing.
  const stands = await sandboxStore(rt, spec, template, await rt.shares.resolve(spec.shares, template.nix !== undefined));
  return startNew(
    rt,
    { spec, tenant, layers: stands.layers, pool: opts.pool },
    (req) => backend.create({ ...req, nixStore: stands.nixStore, shares: stands.shares, warm: opts.pool !== undefined }),
    (r) => ({ type: "created", detail: { name: r.name, template: spec.template } }),
  );
}

export interface NewSandbox {
  readonly spec: ResolvedSpec;
  readonly tenant: string;
  /** Layer digests it stands on, bottom first. */
  readonly layers: readonly string[];
  /** The pool it will wait in. */
  readonly pool?: string | undefined;
  /** Record a failure as a removal with this reason (otherwise the row just goes). */
  readonly failedReason?: string;
  /** False for a sandbox whose processes may have been OOM-killed before (a restored VM). */
  readonly fresh?: boolean;
}

/**
 * Records a new sandbox (quota checked, state "creating", so a crash is
 * reconciled), makes its directory and has `start` bring it up; on failure
 * removes what was made and the row.
 */
export async function startNew(
  rt: RuntimeContext,
  n: NewSandbox,
  start: (req: CreateRequest) => Promise<unknown>,
  event: (r: SandboxRecord) => { type: string; detail: Record<string, unknown> },
): Promise<SandboxInfo> {
  const { spec, tenant, pool } = n;
  const backend = rt.backend(spec.backend);
  rt.space.checkRoom();
  const id = randomBytes(8).toString("hex");
  const now = new Date();
  const record: SandboxRecord = {
    id,
    tenant,
    name: pool ? `pool-${id.slice(0, 8)}` : (spec.name ?? defaultName(id)),
    spec,
    createdAt: now.toISOString(),
    expiresAt: pool ? null : expiryFrom(now, spec.lifetime.timeoutSeconds),
    state: "creating",
    creatorPid: process.pid,
  };
  const slot = rt.rows.insertWithinQuota(record, pool ?? null, n.layers);
  const dir = rt.dirOf(id);
  try {
    await fsp.mkdir(dir, { mode: 0o711 });
    // A pooled sandbox already answers to the name an unnamed claim gives it.
    const hostname = pool ? defaultName(id) : record.name;
    const net = networkMode(spec.network) === "nat" ? await attachNetwork(rt, { id, tenant, name: hostname, spec }) : undefined;
    const uidBase = rangeBase(rt.parts.uidBase, slot);
    await start({ id, spec, hostname, layers: n.layers.map((d) => rt.store.layerDir(d)), dir, net, uidBase });
    rt.rows.setState(id, "running");
    recordEvent(rt.db, { tenant, sandbox: id, ...event(record) });
    rt.conns.started(record, n.fresh ?? true);
    return rt.info({ ...record, state: "running" }, "running");
  } catch (e) {
    if (n.failedReason) await rt.remove(id, tenant, n.failedReason, spec).catch(() => {});
    else {
      await backend.attach(id, dir).destroy().catch(() => {});
      await rt.parts.net?.detach(id).catch(() => {});
      rt.rows.delete(id);
    }
    throw e;
  }
}

/** Refuses network "nat" where it cannot be had (a backend without networking, a state dir over injected backends). */
export function checkNetworking(rt: RuntimeContext, spec: ResolvedSpec): void {
  if (networkMode(spec.network) === "none") return;
  if (!rt.backend(spec.backend).networking) {
    throw new InvalidSpecError([{ path: "network", message: `backend "${spec.backend}" cannot put a sandbox on a network yet: use network "none"` }]);
  }
  if (!rt.parts.net) throw new InvalidSpecError([{ path: "network", message: "this state dir was opened without networking" }]);
}

async function attachNetwork(rt: RuntimeContext, s: { id: string; tenant: string; name: string; spec: ResolvedSpec }) {
  checkNetworking(rt, s.spec);
  const kind = s.spec.backend === "vm" ? "vm" : "container";
  const mac = rt.backend(s.spec.backend).identity?.(s.name, s.spec).mac;
  return rt.parts.net!.attach({ id: s.id, tenant: s.tenant, name: s.name, kind, network: s.spec.network, ...(mac ? { mac } : {}) });
}

/**
 * Stops a persistent sandbox: its processes end, its disk stays; start()
 * runs it again. A sandbox whose writable layer is in memory (created
 * ephemeral, then promoted) cannot be stopped without losing its files,
 * and is refused.
 */
export async function stop(rt: RuntimeContext, r: SandboxRecord): Promise<SandboxInfo> {
  if (r.state === "stopped") return rt.withStatus(r);
  if (r.spec.lifetime.mode !== "persistent" || !rt.handle(r).hasDisk()) {
    throw new ConflictError(`sandbox "${r.name}" keeps its files in memory (it was created ephemeral); only sandboxes created persistent can be stopped`);
  }
  return rt.guard(r.id, async () => {
    rt.conns.drop(r.id);
    await rt.handle(r).stop();
    rt.space.record(rt.db, () => {
      rt.rows.setState(r.id, "stopped");
      recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "stopped" });
    });
    return rt.info({ ...r, state: "stopped" }, "stopped");
  });
}

/** Starts a stopped sandbox again, with the disk it had. */
export async function start(rt: RuntimeContext, r: SandboxRecord): Promise<SandboxInfo> {
  const template = await rt.store.ensureTemplate(r.spec.template);
  // Checked again: the operator may have withdrawn a directory since.
  const stands = await sandboxStore(rt, r.spec, template, await rt.shares.resolve(r.spec.shares, template.nix !== undefined));
  await rt.backend(r.spec.backend).start({
    id: r.id,
    spec: r.spec,
    hostname: r.name,
    layers: stands.layers.map((d) => rt.store.layerDir(d)),
    dir: rt.dirOf(r.id),
    uidBase: rt.uidBaseOf(r.id),
    // A VM plans its devices again at every start: its Nix store's too.
    nixStore: stands.nixStore,
    shares: stands.shares,
  });
  rt.space.record(rt.db, () => {
    rt.rows.setState(r.id, "running");
    recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "started" });
  });
  return rt.info({ ...r, state: "running" }, "running");
}

/** The spec input with `backend` set to the operator's default when it names none. */
function withDefaultBackend(input: unknown, backend: string | undefined): unknown {
  if (backend === undefined || typeof input !== "object" || input === null || Array.isArray(input) || "backend" in input) return input;
  return { ...input, backend };
}

/**
 * Gives a stopped persistent sandbox a new spec (the declared state
 * changed), keeping its disk; start() then runs it with it. The backend
 * rewrites what it made from the old spec (a container's config.json; a
 * VM plans at every start). The backend stays the one it was made on.
 */
export async function reconfigure(rt: RuntimeContext, r: SandboxRecord, spec: ResolvedSpec): Promise<void> {
  if (r.state !== "stopped" || spec.lifetime.mode !== "persistent" || spec.backend !== r.spec.backend) {
    throw new ConflictError(`sandbox "${r.name}" can take a new spec on its disk only when stopped, persistent and on the same backend`);
  }
  checkIdentityFree(rt, spec, r.id);
  const template = await rt.store.ensureTemplate(spec.template);
  const stands = await sandboxStore(rt, spec, template, await rt.shares.resolve(spec.shares, template.nix !== undefined));
  await rt.backend(spec.backend).reconfigure?.({
    id: r.id,
    spec,
    hostname: r.name,
    layers: stands.layers.map((d) => rt.store.layerDir(d)),
    dir: rt.dirOf(r.id),
    uidBase: rt.uidBaseOf(r.id),
    nixStore: stands.nixStore,
    shares: stands.shares,
  });
  rt.rows.setSpec(r.id, spec, null);
  recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "reconfigured" });
}

/** Sets (seconds from now) or clears (null) when the sandbox is removed. */
export function setTimeout(rt: RuntimeContext, r: SandboxRecord, seconds: number | null): SandboxRecord {
  if (seconds !== null && !(Number.isInteger(seconds) && seconds > 0 && seconds <= 30 * 24 * 3600)) {
    throw new InvalidArgumentError("timeout must be a whole number of seconds between 1 and 2592000");
  }
  const expiresAt = expiryFrom(Date.now(), seconds);
  rt.rows.setExpiry(r.id, expiresAt);
  recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "timeout_set", detail: { expiresAt } });
  return { ...r, expiresAt };
}

/**
 * Makes an ephemeral sandbox persistent: no timeout, kept until removed.
 * It goes on running with everything it has written.
 */
export function promote(rt: RuntimeContext, r: SandboxRecord): SandboxRecord {
  const spec: ResolvedSpec = { ...r.spec, lifetime: { mode: "persistent", timeoutSeconds: undefined } };
  rt.rows.setSpec(r.id, spec, null);
  recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "promoted" });
  return { ...r, spec, expiresAt: null };
}
