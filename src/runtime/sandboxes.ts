import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { AgentClient, ExecCallbacks, ExecHandle, ExecRequest, ExecResult } from "../agent/client.js";
import type { BackendKind, CreateRequest, SandboxBackend, SandboxHandle, SandboxStatus, UsageSample } from "../backends/backend.js";
import { openBackends } from "../backends/registry.js";
import { cgroupMode, listChildren, type CgroupMode } from "../host/cgroups.js";
import { nativeBinary } from "../host/native.js";
import { pidAlive } from "../host/process.js";
import { ConflictError, HostError, InvalidArgumentError, NotFoundError, QuotaError } from "../core/errors.js";
import { parseSpec, type ResolvedSpec } from "../core/sandbox-spec.js";
import type { ProgressFn } from "../store/builders/builder.js";
import { GC_GRACE_MS, Store, type TemplateRecord } from "../store/store.js";
import { diskUsage } from "../store/tree.js";
import { buildNixTemplate, type NixTemplateOptions } from "../store/nix/nix-template.js";
import { openDatabase, recordEvent, stmt, type Db } from "./db.js";
import { Tenants } from "./tenants.js";
import { Pools, POOL_TENANT, poolKey } from "./pools.js";
import { Checkpointer } from "./checkpointer.js";

export const DEFAULT_STATE_DIR = "/var/lib/corral";
/**
 * Host uid of root inside every sandbox: inside the range systemd sets
 * aside for containers (524288-1879048191), away from /etc/subuid's usual
 * 100000+ allocations.
 */
export const DEFAULT_UID_BASE = 0x60000000;
/** The tenant of sandboxes made without one (the local CLI). */
export const LOCAL_TENANT = "local";

export interface SandboxesOptions {
  readonly stateDir?: string;
  readonly uidBase?: number;
  /** Parent cgroup for all sandboxes of this state dir (default $CORRAL_CGROUP_PARENT or "corral"). */
  readonly cgroupParent?: string;
  /**
   * A long-lived process (the daemon, a benchmark standing in for it):
   * keeps a VM shim started ahead of need (~0.1 s off each VM start) and
   * one agent connection per sandbox for its commands (~0.5 ms off each).
   * A one-shot CLI process wants neither.
   */
  readonly longLived?: boolean;
}

/** Whose sandboxes a call may see: one tenant's, or (tenant unset) all. */
export interface Scope {
  readonly tenant?: string | undefined;
}

export interface SandboxRecord {
  readonly id: string;
  readonly tenant: string;
  readonly name: string;
  readonly spec: ResolvedSpec;
  readonly createdAt: string;
  /** When the sandbox is removed; null: never (persistent). */
  readonly expiresAt: string | null;
  readonly state: "creating" | "running" | "stopped";
  /** Pid of the process creating it, to tell a crash from work in progress. */
  readonly creatorPid: number;
}

/** A saved microVM: what a restore starts from. */
export interface SnapshotInfo {
  readonly name: string;
  readonly tenant: string;
  /** The spec restored sandboxes get (name aside). */
  readonly spec: ResolvedSpec;
  /** Name of the sandbox it was taken from. */
  readonly source: string;
  /** Memory image plus disk image, on the host. */
  readonly bytes: number;
  readonly createdAt: string;
}

export interface SandboxInfo extends SandboxRecord {
  readonly status: SandboxStatus;
}

export interface ExecOutcome extends ExecResult {
  /** The kernel's OOM killer ended the command (memory limit). */
  readonly oomKilled: boolean;
}

interface Row {
  id: string;
  tenant_id: string;
  name: string;
  spec: string;
  state: "creating" | "running" | "stopped";
  created_at: string;
  expires_at: string | null;
  creator_pid: number;
  pool_key: string | null;
}

const ID_PATTERN = /^[0-9a-f]{16}$/;
const SNAPSHOT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

interface SnapshotRow {
  tenant_id: string;
  name: string;
  id: string;
  spec: string;
  layers: string;
  source: string;
  bytes: number;
  created_at: string;
}

function toSnapshot(r: SnapshotRow): SnapshotInfo {
  return { name: r.name, tenant: r.tenant_id, spec: JSON.parse(r.spec) as ResolvedSpec, source: r.source, bytes: r.bytes, createdAt: r.created_at };
}

const toRecord = (r: Row): SandboxRecord => ({
  id: r.id,
  tenant: r.tenant_id,
  name: r.name,
  spec: JSON.parse(r.spec) as ResolvedSpec,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  state: r.state,
  creatorPid: r.creator_pid,
});

/**
 * The library's front door: create, find, use and remove sandboxes. State
 * is an SQLite database in the state dir (WAL), so any number of processes
 * (CLI invocations, the daemon) can share it.
 */
/** The name (and hostname) of a sandbox created without one. */
const defaultName = (id: string) => `sb-${id.slice(0, 8)}`;

export class Sandboxes {
  readonly tenants: Tenants;
  readonly pools: Pools;
  private readonly sandboxesDir: string;
  /** How this host's cgroups are mounted (v2, hybrid or v1). */
  readonly cgroupMode: CgroupMode = cgroupMode();
  /** Agent connections by sandbox id, when longLived (sharedAgent). */
  private readonly agents: Map<string, Promise<AgentClient>>;
  /** Pooled sandboxes a claim in this process is checking (claim()). */
  private readonly claiming = new Set<string>();
  /**
   * Claimed sandboxes taking their own hostname (a pooled one was started
   * with the pool's): their first command waits for it, the claim does not.
   */
  private readonly renaming = new Map<string, Promise<void>>();
  /**
   * OOM kills in each sandbox's cgroup as last read (0 for one this process
   * made: a new cgroup), so a command's start needs no read: only a
   * command that ends by SIGKILL has the count read again (startExec). An
   * OOM kill of another process's command since the last read is taken for
   * the next SIGKILLed command's own.
   */
  private readonly oomSeen = new Map<string, number>();
  /** longLived: checkpoints the database in a worker thread (see Checkpointer). */
  private readonly checkpointer: Checkpointer | undefined;

  private constructor(
    readonly stateDir: string,
    readonly uidBase: number,
    readonly cgroupParent: string,
    private readonly backends: ReadonlyMap<BackendKind, SandboxBackend>,
    readonly store: Store,
    readonly db: Db,
    private readonly longLived: boolean,
  ) {
    this.sandboxesDir = path.join(stateDir, "sandboxes");
    this.agents = new Map();
    if (longLived) {
      db.pragma("wal_autocheckpoint = 0");
      this.checkpointer = new Checkpointer(db.name, {
        onFailure: () => {
          try {
            db.pragma("wal_autocheckpoint = 1000");
          } catch {
            // Closed meanwhile.
          }
        },
      });
    }
    this.tenants = new Tenants(db);
    this.pools = new Pools(db);
  }

  static async open(opts: SandboxesOptions = {}): Promise<Sandboxes> {
    if (process.getuid?.() !== 0) throw new HostError("corral needs root (it creates namespaces, mounts and cgroups)");
    const stateDir = path.resolve(opts.stateDir ?? process.env["CORRAL_STATE_DIR"] ?? DEFAULT_STATE_DIR);
    const uidBase = opts.uidBase ?? DEFAULT_UID_BASE;
    const cgroupParent = opts.cgroupParent ?? process.env["CORRAL_CGROUP_PARENT"] ?? "corral";
    await fsp.mkdir(stateDir, { recursive: true, mode: 0o711 });
    await fsp.chmod(stateDir, 0o711);
    const store = new Store(path.join(stateDir, "store"), uidBase);
    await store.init();
    for (const d of ["sandboxes", "crun"]) await fsp.mkdir(path.join(stateDir, d), { recursive: true, mode: 0o711 });
    const agentDir = await store.addBinary(nativeBinary("corral-agent"), "corral-agent").catch((e: NodeJS.ErrnoException) => {
      throw new HostError(`the agent binary is missing (${e.message}); run npm run build`);
    });
    const longLived = opts.longLived ?? false;
    const backends = openBackends({ stateDir, store, uidBase, cgroupParent, agentDir, longLived });
    const db = openDatabase(path.join(stateDir, "corral.db"));
    const s = new Sandboxes(stateDir, uidBase, cgroupParent, backends, store, db, longLived);
    await s.reconcile();
    return s;
  }

  close(): void {
    void this.checkpointer?.close();
    for (const id of [...this.agents.keys()]) this.dropAgent(id);
    for (const b of this.backends.values()) b.close?.();
    this.db.close();
  }

  private dirOf(id: string): string {
    return path.join(this.sandboxesDir, id);
  }

  /** The backend of a kind (tests and benches probe them). */
  backend(kind: BackendKind): SandboxBackend {
    const b = this.backends.get(kind);
    if (!b) throw new HostError(`the ${kind} backend is not available`);
    return b;
  }

  private backendFor(spec: ResolvedSpec): SandboxBackend {
    return this.backend(spec.backend);
  }

  private handle(r: SandboxRecord): SandboxHandle {
    return this.backendFor(r.spec).attach(r.id, this.dirOf(r.id));
  }

  /**
   * Starts a sandbox: claimed from a warm pool when one of the same shape
   * has a sandbox ready, otherwise built (template first, if needed) and
   * started cold. `pool` (internal) starts one to wait in that pool.
   */
  async create(input: unknown, opts: Scope & { onProgress?: ProgressFn; pool?: string } = {}): Promise<SandboxInfo> {
    const spec = parseSpec(input);
    const tenant = opts.pool ? POOL_TENANT : (opts.tenant ?? LOCAL_TENANT);
    if (!opts.pool && spec.lifetime.mode === "ephemeral") {
      const key = poolKey(spec);
      if (this.pools.has(key)) {
        const t0 = performance.now();
        const claimed = await this.claim(key, spec, tenant);
        this.pools.record(key, claimed !== undefined, performance.now() - t0);
        if (claimed) return claimed;
      }
    }
    const backend = this.backendFor(spec);
    const template = await this.store.ensureTemplate(spec.template, opts.onProgress);
    return this.startNew(
      spec,
      tenant,
      template.layers,
      opts.pool,
      (req) => backend.create({ ...req, nixStore: this.store.nixStoreView(template), warm: opts.pool !== undefined }),
      (r) => ({ type: "created", detail: { name: r.name, template: spec.template } }),
    );
  }

  /**
   * Records a new sandbox (quota checked, state "creating", so a crash is
   * reconciled), makes its directory and has `start` bring it up; on failure
   * removes what was made and the row.
   */
  private async startNew(
    spec: ResolvedSpec,
    tenant: string,
    layers: readonly string[],
    pool: string | undefined,
    start: (req: CreateRequest) => Promise<unknown>,
    event: (r: SandboxRecord) => { type: string; detail: Record<string, unknown> },
    /** Record the failure as a removal with this reason (otherwise the row just goes). */
    failedReason?: string,
  ): Promise<SandboxInfo> {
    const backend = this.backendFor(spec);
    const id = randomBytes(8).toString("hex");
    const now = new Date();
    const record: SandboxRecord = {
      id,
      tenant,
      name: pool ? `pool-${id.slice(0, 8)}` : (spec.name ?? defaultName(id)),
      spec,
      createdAt: now.toISOString(),
      expiresAt: spec.lifetime.timeoutSeconds && !pool ? new Date(now.getTime() + spec.lifetime.timeoutSeconds * 1000).toISOString() : null,
      state: "creating",
      creatorPid: process.pid,
    };
    this.insertWithinQuota(record, pool ?? null, layers);
    const dir = this.dirOf(id);
    try {
      await fsp.mkdir(dir, { mode: 0o711 });
      // A pooled sandbox already answers to the name an unnamed claim gives it.
      await start({ id, spec, hostname: pool ? defaultName(id) : record.name, layers: layers.map((d) => this.store.layerDir(d)), dir });
      stmt(this.db, "UPDATE sandboxes SET state = 'running' WHERE id = ?").run(id);
      this.oomSeen.set(id, 0);
      recordEvent(this.db, { tenant, sandbox: id, ...event(record) });
      // Connected ahead of the first command (in the background: the
      // caller's answer does not wait), a pooled sandbox's while it waits.
      if (this.longLived) void this.sharedAgent(record).catch(() => {});
      return { ...record, state: "running", status: "running" };
    } catch (e) {
      if (failedReason) await this.remove(id, tenant, failedReason, spec).catch(() => {});
      else {
        await backend.attach(id, dir).destroy().catch(() => {});
        stmt(this.db, "DELETE FROM sandboxes WHERE id = ?").run(id);
      }
      throw e;
    }
  }


  /**
   * Takes a ready sandbox out of a pool for a tenant. The oldest one is
   * checked alive first (a pooled sandbox that died is removed and the next
   * one tried), then changes hands in one write transaction with the quota
   * check and the event: the row leaves the pool (pool_key cleared) only if
   * it is still there, so no sandbox is handed out twice, and a pooled
   * sandbox is never returned to a pool. One commit per claim, not three.
   */
  private async claim(key: string, spec: ResolvedSpec, tenant: string): Promise<SandboxInfo | undefined> {
    for (let attempt = 0; attempt < 3; attempt++) {
      // Skips the candidates other claims in this process are checking.
      const rows = stmt(this.db, "SELECT * FROM sandboxes WHERE pool_key = ? AND state = 'running' ORDER BY created_at LIMIT ?").all(
        key,
        this.claiming.size + 1,
      ) as Row[];
      const row = rows.find((r) => !this.claiming.has(r.id));
      if (!row) return undefined;
      const pooled = toRecord(row);
      this.claiming.add(pooled.id);
      try {
        if ((await this.handle(pooled).status()) !== "running") {
          await this.remove(pooled.id, POOL_TENANT, "pooled sandbox found dead at claim", pooled.spec);
          continue;
        }
        const now = new Date();
        const r: SandboxRecord = {
          ...pooled,
          tenant,
          name: spec.name ?? defaultName(pooled.id),
          spec,
          createdAt: now.toISOString(),
          expiresAt: spec.lifetime.timeoutSeconds ? new Date(now.getTime() + spec.lifetime.timeoutSeconds * 1000).toISOString() : null,
        };
        const taken = this.db
          .transaction((): boolean => {
            this.checkQuota(tenant, spec.resources.memory);
            let changes: number;
            try {
              changes = stmt(this.db, "UPDATE sandboxes SET tenant_id = ?, name = ?, spec = ?, created_at = ?, expires_at = ?, pool_key = NULL WHERE id = ? AND pool_key = ?").run(
                r.tenant, r.name, JSON.stringify(r.spec), r.createdAt, r.expiresAt, r.id, key,
              ).changes;
            } catch (e) {
              if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") throw new ConflictError(`a sandbox named "${r.name}" already exists`);
              throw e;
            }
            if (changes === 0) return false; // another process claimed it first
            recordEvent(this.db, { tenant, sandbox: r.id, type: "claimed", detail: { pool: key, name: r.name } });
            return true;
          })
          .immediate();
        if (taken) {
          if (r.name !== defaultName(r.id)) this.renameClaimed(r);
          return { ...r, status: "running" };
        }
      } finally {
        this.claiming.delete(pooled.id);
      }
    }
    return undefined;
  }

  /**
   * Renames a claimed sandbox that was given a name in the background (its
   * first command waits for it). The sandbox works either way; a failure
   * is recorded as an event.
   */
  private renameClaimed(r: SandboxRecord): void {
    const done = this.handle(r)
      .rename(r.name)
      .catch((e: unknown) => {
        try {
          recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "rename_failed", detail: { name: r.name, error: (e as Error).message } });
        } catch {
          // The database is closing: nothing to record it in.
        }
      })
      .finally(() => {
        if (this.renaming.get(r.id) === done) this.renaming.delete(r.id);
      });
    this.renaming.set(r.id, done);
  }

  /**
   * Brings every pool to its target: starts what is missing (one at a
   * time), removes ready sandboxes beyond it. The daemon calls this on a
   * timer; returns how many it started and removed. `beforeStart` is
   * awaited before each start (the daemon waits there for a lull in its
   * requests, so a refill does not slow the claims it refills for).
   */
  async refillPools(opts: { beforeStart?: () => Promise<void> } = {}): Promise<{ started: number; removed: number }> {
    let started = 0;
    let removed = 0;
    for (const c of this.pools.configs()) {
      const waiting = this.pools.waiting(c.key);
      for (let n = waiting.length; n < c.target; n++) {
        await opts.beforeStart?.();
        await this.create({ template: c.template, backend: c.backend, resources: c.resources }, { pool: c.key });
        started++;
      }
      for (const extra of waiting.filter((w) => w.state === "running").slice(c.target)) {
        await this.remove(extra.id, POOL_TENANT, "pool shrunk");
        removed++;
      }
    }
    return { started, removed };
  }

  /** Throws QuotaError when one more sandbox of `memory` bytes would put the tenant over a quota. */
  private checkQuota(tenant: string, memory: number): void {
    const t = this.tenants.get(tenant);
    if (t.maxSandboxes === null && t.maxMemory === null) return;
    const use = stmt(this.db, "SELECT count(*) AS n, coalesce(sum(json_extract(spec, '$.resources.memory')), 0) AS mem FROM sandboxes WHERE tenant_id = ?").get(
      tenant,
    ) as { n: number; mem: number };
    if (t.maxSandboxes !== null && use.n + 1 > t.maxSandboxes) throw new QuotaError("sandboxes", t.maxSandboxes, use.n + 1);
    const mem = use.mem + memory;
    if (t.maxMemory !== null && mem > t.maxMemory) throw new QuotaError("memory", t.maxMemory, mem);
  }

  /** Checks the tenant's quotas and inserts the row, atomically. */
  private insertWithinQuota(r: SandboxRecord, pool: string | null, layers: readonly string[]): void {
    this.db
      .transaction(() => {
        this.checkQuota(r.tenant, r.spec.resources.memory);
        try {
          stmt(
            this.db,
            "INSERT INTO sandboxes (id, tenant_id, name, spec, state, created_at, expires_at, creator_pid, pool_key, layers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          ).run(r.id, r.tenant, r.name, JSON.stringify(r.spec), r.state, r.createdAt, r.expiresAt, r.creatorPid, pool, JSON.stringify(layers));
        } catch (e) {
          if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") throw new ConflictError(`a sandbox named "${r.name}" already exists`);
          throw e;
        }
      })
      .immediate();
  }

  /** Finds a sandbox (running or stopped) by id or name, within the scope's tenant. */
  record(ref: string, scope: Scope = {}): SandboxRecord {
    if (typeof ref !== "string" || ref.length === 0 || ref.length > 64 || !/^[a-z0-9][a-z0-9-]*$/.test(ref)) {
      throw new InvalidArgumentError(`not a sandbox name or id: ${JSON.stringify(ref)}`);
    }
    const rows = stmt(this.db, "SELECT * FROM sandboxes WHERE (id = ? OR name = ?) AND state IN ('running', 'stopped') AND (? IS NULL OR tenant_id = ?)")
      .all(ref, ref, scope.tenant ?? null, scope.tenant ?? null) as Row[];
    const byId = rows.find((r) => r.id === ref);
    if (byId) return toRecord(byId);
    if (rows.length > 1) throw new ConflictError(`"${ref}" names sandboxes of several tenants; use the id`);
    if (!rows[0]) throw new NotFoundError("sandbox", ref);
    return toRecord(rows[0]);
  }

  async get(ref: string, scope: Scope = {}): Promise<SandboxInfo> {
    return this.withStatus(this.record(ref, scope));
  }

  private async withStatus(r: SandboxRecord): Promise<SandboxInfo> {
    return { ...r, status: r.state === "stopped" ? "stopped" : await this.handle(r).status() };
  }

  /** Sandboxes in scope (running and stopped), optionally only those carrying every given label. */
  async list(opts: Scope & { labels?: Readonly<Record<string, string>> } = {}): Promise<SandboxInfo[]> {
    const rows = stmt(this.db, "SELECT * FROM sandboxes WHERE state IN ('running', 'stopped') AND ((? IS NULL AND tenant_id != '_pool') OR tenant_id = ?) ORDER BY created_at, id")
      .all(opts.tenant ?? null, opts.tenant ?? null) as Row[];
    const wanted = rows.map(toRecord).filter((r) => !opts.labels || Object.entries(opts.labels).every(([k, v]) => r.spec.labels[k] === v));
    return Promise.all(wanted.map((r) => this.withStatus(r)));
  }

  /** A running sandbox's record; ConflictError for a stopped one. */
  running(ref: string, scope: Scope = {}): SandboxRecord {
    const r = this.record(ref, scope);
    if (r.state === "stopped") throw new ConflictError(`sandbox "${r.name}" is stopped; start it first`);
    return r;
  }

  /**
   * The connection this process keeps to a running sandbox's agent
   * (longLived), made again when the last one has closed. Commands share
   * it (the protocol multiplexes streams); it is closed when the sandbox
   * stops or goes, and by close().
   */
  private async sharedAgent(r: SandboxRecord): Promise<AgentClient> {
    const cached = this.agents.get(r.id);
    if (cached) {
      const c = await cached.catch(() => undefined);
      if (c && !c.closed) return c;
      if (this.agents.get(r.id) === cached) this.agents.delete(r.id);
    }
    const made = this.handle(r).agent();
    this.agents.set(r.id, made);
    made.catch(() => {
      if (this.agents.get(r.id) === made) this.agents.delete(r.id);
    });
    return made;
  }

  /** Forgets what this process keeps for a sandbox that stops or goes: its agent connection (closed), its OOM count. */
  private dropAgent(id: string): void {
    const c = this.agents.get(id);
    this.agents.delete(id);
    this.oomSeen.delete(id);
    c?.then((x) => x.close(), () => {});
  }

  /** A fresh connection to the sandbox's agent; the caller closes it. */
  async agent(ref: string, scope: Scope = {}): Promise<AgentClient> {
    return this.handle(this.running(ref, scope)).agent();
  }

  async stats(ref: string, scope: Scope = {}): Promise<UsageSample> {
    return this.handle(this.running(ref, scope)).stats();
  }

  /**
   * Runs a command in the sandbox to its end. The sandbox's env and workdir
   * apply unless the request overrides them.
   */
  async exec(ref: string, req: ExecRequest, cb: ExecCallbacks = {}, scope: Scope = {}): Promise<ExecOutcome> {
    const { outcome, end } = await this.startExec(ref, req, cb, scope);
    try {
      return await outcome;
    } finally {
      end();
    }
  }

  /**
   * Starts a command and hands back its handle (pid, stdin, signals) and
   * its outcome, which tells an OOM kill from any other SIGKILL by the
   * cgroup's OOM counter. The caller calls `end` when it is done with the
   * command: before the command has ended, that kills it unless it is
   * keepAlive (as a lost connection would).
   */
  async startExec(
    ref: string,
    req: ExecRequest,
    cb: ExecCallbacks = {},
    scope: Scope = {},
  ): Promise<{ record: SandboxRecord; handle: ExecHandle; outcome: Promise<ExecOutcome>; end: () => void }> {
    const record = this.running(ref, scope);
    const renaming = this.renaming.get(record.id);
    if (renaming) await renaming;
    const h = this.handle(record);
    const seen = this.oomSeen.get(record.id);
    const before = seen ?? (await h.oomKills());
    if (seen === undefined) this.oomSeen.set(record.id, before);
    const client = this.longLived ? await this.sharedAgent(record) : await h.agent();
    let handle: ExecHandle;
    try {
      handle = client.exec(this.execRequest(record, req), cb);
    } catch (e) {
      if (!this.longLived) client.close();
      throw e;
    }
    let ended = false;
    const outcome = handle.result.then(async (r) => {
      if (r.signal !== 9) return { ...r, oomKilled: false };
      const now = await h.oomKills();
      this.oomSeen.set(record.id, Math.max(now, this.oomSeen.get(record.id) ?? 0));
      return { ...r, oomKilled: now > before };
    });
    outcome.catch(() => {}).finally(() => (ended = true)); // a command that never started is reported through handle.pid
    const end = this.longLived
      ? () => {
          if (!ended && !req.keepAlive) void handle.kill(9).catch(() => {});
        }
      : () => client.close();
    return { record, handle, outcome, end };
  }

  /** The request as the agent gets it: the sandbox's env under the request's, its workdir by default. */
  private execRequest(r: SandboxRecord, req: ExecRequest): ExecRequest {
    return { ...req, env: { ...r.spec.env, ...req.env }, cwd: req.cwd ?? r.spec.workdir };
  }

  /** Sets (seconds from now) or clears (null) when the sandbox is removed. */
  setTimeout(ref: string, seconds: number | null, scope: Scope = {}): SandboxRecord {
    if (seconds !== null && !(Number.isInteger(seconds) && seconds > 0 && seconds <= 30 * 24 * 3600)) {
      throw new InvalidArgumentError("timeout must be a whole number of seconds between 1 and 2592000");
    }
    const r = this.record(ref, scope);
    const expiresAt = seconds === null ? null : new Date(Date.now() + seconds * 1000).toISOString();
    stmt(this.db, "UPDATE sandboxes SET expires_at = ? WHERE id = ?").run(expiresAt, r.id);
    recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "timeout_set", detail: { expiresAt } });
    return { ...r, expiresAt };
  }

  /**
   * Makes an ephemeral sandbox persistent: no timeout, kept until removed.
   * It goes on running with everything it has written.
   */
  promote(ref: string, scope: Scope = {}): SandboxRecord {
    const r = this.record(ref, scope);
    const spec: ResolvedSpec = { ...r.spec, lifetime: { mode: "persistent", timeoutSeconds: undefined } };
    stmt(this.db, "UPDATE sandboxes SET spec = ?, expires_at = NULL WHERE id = ?").run(JSON.stringify(spec), r.id);
    recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "promoted" });
    return { ...r, spec, expiresAt: null };
  }

  /**
   * Stops a persistent sandbox: its processes end, its disk stays; start()
   * runs it again. A sandbox whose writable layer is in memory (created
   * ephemeral, then promoted) cannot be stopped without losing its files,
   * and is refused.
   */
  async stop(ref: string, scope: Scope = {}): Promise<SandboxInfo> {
    const r = this.record(ref, scope);
    if (r.state === "stopped") return this.withStatus(r);
    if (r.spec.lifetime.mode !== "persistent" || !this.handle(r).hasDisk()) {
      throw new ConflictError(`sandbox "${r.name}" keeps its files in memory (it was created ephemeral); only sandboxes created persistent can be stopped`);
    }
    this.dropAgent(r.id);
    await this.handle(r).stop();
    stmt(this.db, "UPDATE sandboxes SET state = 'stopped' WHERE id = ?").run(r.id);
    recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "stopped" });
    return { ...r, state: "stopped", status: "stopped" };
  }

  /** Starts a stopped sandbox again, with the disk it had. */
  async start(ref: string, scope: Scope = {}): Promise<SandboxInfo> {
    const r = this.record(ref, scope);
    const template = await this.store.ensureTemplate(r.spec.template);
    await this.backendFor(r.spec).start({
      id: r.id,
      spec: r.spec,
      hostname: r.name,
      layers: template.layers.map((d) => this.store.layerDir(d)),
      dir: this.dirOf(r.id),
    });
    stmt(this.db, "UPDATE sandboxes SET state = 'running' WHERE id = ?").run(r.id);
    recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "started" });
    return { ...r, state: "running", status: "running" };
  }

  /**
   * Makes a new template from a persistent sandbox: its template's layers
   * plus its writable layer, copied (cp -a keeps overlayfs's whiteouts and
   * opaque-directory xattrs) while the sandbox is stopped, then content
   * addressed like any layer. A running sandbox is stopped for the copy and
   * started again.
   */
  async commit(ref: string, templateName: string, scope: Scope = {}): Promise<TemplateRecord> {
    parseSpec({ template: templateName }); // the name must be a valid template name
    if (await this.store.template(templateName)) throw new ConflictError(`a template named "${templateName}" already exists`);
    const r = this.record(ref, scope);
    if (r.spec.lifetime.mode !== "persistent" || !this.handle(r).hasDisk()) {
      throw new ConflictError(`sandbox "${r.name}" keeps its writable layer in memory (it was created ephemeral); only sandboxes created persistent can be committed`);
    }
    const row = stmt(this.db, "SELECT layers FROM sandboxes WHERE id = ?").get(r.id) as { layers: string | null };
    const from = await this.store.template(r.spec.template);
    const base = row.layers ? (JSON.parse(row.layers) as string[]) : [...(from?.layers ?? [])];
    const wasRunning = r.state === "running";
    if (wasRunning) await this.stop(r.id, scope);
    const copy = this.store.workPath(`commit-${r.id}`);
    try {
      await this.handle(r).exportWritableLayer(copy, this.store.workPath(`mnt-${r.id}`));
      const layer = await this.store.addLayer(copy, `commit:${r.name}`);
      // A Nix template's store paths come along (a sandbox cannot write to them).
      const t = await this.store.registerTemplate(templateName, [...base, layer.digest], `commit of sandbox ${r.name} on ${r.spec.template}`, { nix: from?.nix });
      recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "committed", detail: { template: templateName, layer: layer.digest } });
      return t;
    } finally {
      await fsp.rm(copy, { recursive: true, force: true }); // left only when the layer was already stored
      if (wasRunning) await this.start(r.id, scope);
    }
  }

  /** Builds (or rebuilds) a template from a Nix file; see store/nix/nix-template.ts. */
  buildNixTemplate(name: string, file: string, opts: NixTemplateOptions, onProgress?: ProgressFn): Promise<TemplateRecord> {
    return buildNixTemplate(this.store, name, file, opts, onProgress);
  }

  /** Stops and removes a sandbox and everything it had on the host. */
  async destroy(ref: string, scope: Scope = {}, reason = "removed"): Promise<void> {
    const r = this.record(ref, scope);
    await this.remove(r.id, r.tenant, reason, r.spec);
  }

  private async remove(id: string, tenant: string | undefined, reason: string, spec?: ResolvedSpec): Promise<void> {
    this.dropAgent(id);
    if (spec) await this.backendFor(spec).attach(id, this.dirOf(id)).destroy();
    else await this.destroyUnknown(id);
    stmt(this.db, "DELETE FROM sandboxes WHERE id = ?").run(id);
    recordEvent(this.db, { ...(tenant ? { tenant } : {}), sandbox: id, type: "destroyed", detail: { reason } });
  }

  /**
   * The last `maxBytes` of what a sandbox printed outside any exec: a VM's
   * serial console (kernel messages, a panic, the guest init), a
   * container's runtime log.
   */
  async logs(ref: string, scope: Scope = {}, maxBytes = 64 * 1024): Promise<string> {
    return this.handle(this.record(ref, scope)).logs(maxBytes);
  }

  /**
   * Removes a sandbox whose kind is not known (host state without a row):
   * every backend's destroy is idempotent and removes what is its own.
   */
  private async destroyUnknown(id: string): Promise<void> {
    for (const b of this.backends.values()) await b.attach(id, this.dirOf(id)).destroy();
  }

  /**
   * Saves a running microVM as snapshot `name` of its tenant: memory and
   * device state (and a persistent VM's disk) of one instant; the VM runs
   * on. Restores start from it in a fraction of a boot.
   */
  async snapshot(ref: string, name: string, scope: Scope = {}): Promise<SnapshotInfo> {
    if (!SNAPSHOT_NAME.test(name)) throw new InvalidArgumentError(`a snapshot name is 1-63 lowercase letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`);
    const r = this.running(ref, scope);
    const h = this.handle(r);
    if (!h.snapshot) throw new ConflictError(`sandbox "${r.name}" is a ${r.spec.backend}: only microVM sandboxes can be snapshotted`);
    if (stmt(this.db, "SELECT 1 FROM snapshots WHERE tenant_id = ? AND name = ?").get(r.tenant, name)) {
      throw new ConflictError(`a snapshot named "${name}" already exists`);
    }
    const id = randomBytes(8).toString("hex");
    const row = stmt(this.db, "SELECT layers FROM sandboxes WHERE id = ?").get(r.id) as { layers: string | null };
    const { bytes, createdAt } = await h.snapshot(id);
    try {
      const info: SnapshotInfo = { name, tenant: r.tenant, spec: { ...r.spec, name: undefined }, source: r.name, bytes, createdAt };
      stmt(this.db, "INSERT INTO snapshots (tenant_id, name, id, spec, layers, source, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)").run(
        r.tenant, name, id, JSON.stringify(info.spec), row.layers ?? "[]", r.name, bytes, info.createdAt,
      );
      recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "snapshot", detail: { name, bytes } });
      return info;
    } catch (e) {
      await this.backendFor(r.spec).removeSnapshot?.(id);
      if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") throw new ConflictError(`a snapshot named "${name}" already exists`);
      throw e;
    }
  }

  listSnapshots(scope: Scope = {}): SnapshotInfo[] {
    const rows = stmt(this.db, "SELECT * FROM snapshots WHERE tenant_id = ? ORDER BY name").all(scope.tenant ?? LOCAL_TENANT) as SnapshotRow[];
    return rows.map(toSnapshot);
  }

  private snapshotRow(name: string, scope: Scope): SnapshotRow {
    const row = stmt(this.db, "SELECT * FROM snapshots WHERE tenant_id = ? AND name = ?").get(scope.tenant ?? LOCAL_TENANT, name) as SnapshotRow | undefined;
    if (!row) throw new NotFoundError("snapshot", name);
    return row;
  }

  async deleteSnapshot(name: string, scope: Scope = {}): Promise<void> {
    const row = this.snapshotRow(name, scope);
    stmt(this.db, "DELETE FROM snapshots WHERE id = ?").run(row.id);
    await this.backendFor(JSON.parse(row.spec) as ResolvedSpec).removeSnapshot?.(row.id);
  }

  /**
   * A new sandbox from snapshot `name`: the saved VM's memory, devices and
   * disk, with its own id, name, hostname and fresh randomness. The spec is
   * the snapshot's (its resources cannot change: they are in the memory
   * image); `opts.name` names the new sandbox.
   */
  async restoreSnapshot(name: string, opts: Scope & { name?: string } = {}): Promise<SandboxInfo> {
    const row = this.snapshotRow(name, opts);
    const tenant = opts.tenant ?? LOCAL_TENANT;
    const spec = parseSpec({ ...(JSON.parse(row.spec) as object), ...(opts.name ? { name: opts.name } : {}) });
    const backend = this.backendFor(spec);
    const { restore } = backend;
    if (!restore || !(await backend.hasSnapshot?.(row.id))) throw new HostError(`snapshot "${name}" has lost its files on this host; delete it`);
    const info = await this.startNew(
      spec,
      tenant,
      JSON.parse(row.layers) as string[],
      undefined,
      (req) => restore.call(backend, req, row.id),
      () => ({ type: "restored", detail: { snapshot: name } }),
      "restore failed",
    );
    // Its guest may carry OOM kills from before the snapshot: the count is
    // read at its first command, not taken to be 0 as for a new sandbox.
    this.oomSeen.delete(info.id);
    return info;
  }


  /**
   * Layer digests some sandbox stands on: those recorded at its start, or
   * (for rows from before layers were recorded) its template's current ones.
   */
  async layersInUse(): Promise<Set<string>> {
    const used = new Set<string>();
    const rows = stmt(this.db, "SELECT spec, layers FROM sandboxes").all() as { spec: string; layers: string | null }[];
    for (const r of rows) {
      const layers = r.layers
        ? (JSON.parse(r.layers) as string[])
        : ((await this.store.template((JSON.parse(r.spec) as ResolvedSpec).template))?.layers ?? []);
      for (const d of layers) used.add(d);
    }
    for (const r of stmt(this.db, "SELECT layers FROM snapshots").all() as { layers: string }[]) {
      for (const d of JSON.parse(r.layers) as string[]) used.add(d);
    }
    return used;
  }

  /**
   * What the store and the sandboxes use on disk: each layer once (shared by
   * every sandbox on it) and each sandbox's private directory (its writable
   * layer when persistent; an ephemeral one's is tmpfs, in memory).
   */
  async diskUsage(): Promise<{
    layers: { digest: string; bytes: number; templates: string[]; sandboxes: number }[];
    sandboxes: { id: string; name: string; bytes: number }[];
    sharedBytes: number;
    privateBytes: number;
  }> {
    const templates = await this.store.templates();
    const rows = stmt(this.db, "SELECT id, name, spec, layers FROM sandboxes").all() as { id: string; name: string; spec: string; layers: string | null }[];
    const layers = [];
    for (const l of await this.store.layers()) {
      layers.push({
        digest: l.digest,
        bytes: await diskUsage(this.store.layerDir(l.digest)),
        templates: templates.filter((t) => t.layers.includes(l.digest)).map((t) => t.name),
        sandboxes: rows.filter((r) => r.layers && (JSON.parse(r.layers) as string[]).includes(l.digest)).length,
      });
    }
    const sandboxes = [];
    for (const r of rows) sandboxes.push({ id: r.id, name: r.name, bytes: await diskUsage(this.dirOf(r.id)).catch(() => 0) });
    const sum = (xs: { bytes: number }[]) => xs.reduce((a, x) => a + x.bytes, 0);
    return { layers, sandboxes, sharedBytes: sum(layers), privateBytes: sum(sandboxes) };
  }

  /** Removes layers no template names and no sandbox stands on. */
  async gc(graceMs = GC_GRACE_MS): Promise<{ removed: string[]; images: string[]; freedBytes: number }> {
    const layers = await this.store.gc(await this.layersInUse(), graceMs);
    // What backends derived from layer stacks nothing stands on any more (VM images, the snapshots made on them).
    const stacks: string[][] = (await this.store.templates()).map((t) => [...t.layers]);
    for (const r of stmt(this.db, "SELECT layers FROM sandboxes WHERE layers IS NOT NULL UNION ALL SELECT layers FROM snapshots").all() as { layers: string }[]) {
      stacks.push(JSON.parse(r.layers) as string[]);
    }
    const images = { removed: [] as string[], freedBytes: 0 };
    for (const b of this.backends.values()) {
      const r = await b.gc?.(stacks, graceMs);
      if (r) images.removed.push(...r.removed), (images.freedBytes += r.freedBytes);
    }
    return { removed: layers.removed, images: images.removed, freedBytes: layers.freedBytes + images.freedBytes };
  }

  /** Removes every sandbox whose timeout has passed; returns their ids. */
  async reapExpired(now = Date.now()): Promise<string[]> {
    const rows = stmt(this.db, "SELECT * FROM sandboxes WHERE state = 'running' AND expires_at IS NOT NULL AND expires_at <= ?")
      .all(new Date(now).toISOString()) as Row[];
    for (const r of rows) await this.remove(r.id, r.tenant_id, "timeout", toRecord(r).spec);
    return rows.map((r) => r.id);
  }

  /**
   * Makes host and database agree after a crash, both ways: rows whose
   * creator died mid-create, sandbox directories, crun state and cgroups
   * without a row are removed, and so are expired sandboxes.
   */
  async reconcile(): Promise<{ removed: string[] }> {
    const removed: string[] = [];
    await this.store.reclaimTmp();
    for (const b of this.backends.values()) await b.sweep?.();
    const rows = stmt(this.db, "SELECT * FROM sandboxes").all() as Row[];
    for (const r of rows) {
      if (r.state === "creating" && !pidAlive(r.creator_pid)) {
        await this.remove(r.id, r.tenant_id, "creator died mid-create", toRecord(r).spec);
        removed.push(r.id);
      }
    }
    removed.push(...(await this.reapExpired()));
    // An ephemeral sandbox whose init has died is gone for good; a
    // persistent one keeps its disk and is marked stopped.
    for (const r of (stmt(this.db, "SELECT * FROM sandboxes WHERE state = 'running'").all() as Row[]).map(toRecord)) {
      if ((await this.handle(r).status()) === "running") continue;
      if (r.spec.lifetime.mode === "ephemeral") {
        await this.remove(r.id, r.tenant, "exited", r.spec);
        removed.push(r.id);
      } else {
        await this.handle(r).stop();
        stmt(this.db, "UPDATE sandboxes SET state = 'stopped' WHERE id = ?").run(r.id);
        recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "stopped", detail: { reason: "found dead on reconcile" } });
      }
    }
    // What is on the host is listed before the rows are read: a creator
    // inserts its row before it makes anything, so whatever a live creator
    // has made by now has a row we are about to see.
    const onHost = new Set<string>([
      ...(await fsp.readdir(this.sandboxesDir)),
      ...(await listChildren(this.cgroupMode, this.cgroupParent)),
    ]);
    for (const b of this.backends.values()) for (const id of (await b.hostIds?.()) ?? []) onHost.add(id);
    const known = new Set((stmt(this.db, "SELECT id FROM sandboxes").all() as { id: string }[]).map((r) => r.id));
    for (const id of onHost) {
      if (!ID_PATTERN.test(id) || known.has(id)) continue;
      await this.destroyUnknown(id);
      recordEvent(this.db, { sandbox: id, type: "destroyed", detail: { reason: "reconcile: no record" } });
      removed.push(id);
    }
    return { removed };
  }
}
