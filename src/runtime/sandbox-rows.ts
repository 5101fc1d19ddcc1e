import { ConflictError, InvalidArgumentError, NotFoundError, QuotaError, SandboxNotRunningError } from "../core/errors.js";
import type { ResolvedSpec } from "../core/sandbox-spec.js";
import { recordEvent, stmt, uniqueOrConflict, type Db } from "./db.js";
import type { SandboxRecord, Scope } from "./records.js";
import type { Tenants } from "./tenants.js";
import { freeSlot, type SlotBlocks } from "./uid-ranges.js";

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

const nameTaken = (name: string) => `a sandbox named "${name}" already exists`;

/** The warm pools' reserved tenant (pools.ts POOL_TENANT; not imported: pools.ts imports this file). */
const POOL_TENANT_ID = "_pool";

/**
 * The sandboxes table: every statement that reads or writes it, and the
 * quota check that goes with an insert or a claim in one transaction.
 */
export class SandboxRows {
  /**
   * The quota of a tenant that has none of its own (set by the daemon:
   * corral daemon --default-max-sandboxes/--default-max-memory); the
   * pools' tenant is bounded by the pool targets instead. Null: none.
   */
  defaultQuota: { maxSandboxes: number | null; maxMemory: number | null } = { maxSandboxes: null, maxMemory: null };

  constructor(
    private readonly db: Db,
    private readonly tenants: Tenants,
    /** The slots this state dir may hand out on its host (host-claims.ts); all of them over injected backends. */
    private readonly slots?: SlotBlocks,
  ) {}

  /** Throws QuotaError when one more sandbox of `memory` bytes would put the tenant over a quota. */
  private checkQuota(tenant: string, memory: number): void {
    const own = this.tenants.get(tenant);
    const d = tenant === POOL_TENANT_ID ? { maxSandboxes: null, maxMemory: null } : this.defaultQuota;
    const t = { maxSandboxes: own.maxSandboxes ?? d.maxSandboxes, maxMemory: own.maxMemory ?? d.maxMemory };
    if (t.maxSandboxes === null && t.maxMemory === null) return;
    const use = stmt(this.db, "SELECT count(*) AS n, coalesce(sum(json_extract(spec, '$.resources.memory')), 0) AS mem FROM sandboxes WHERE tenant_id = ?").get(
      tenant,
    ) as { n: number; mem: number };
    if (t.maxSandboxes !== null && use.n + 1 > t.maxSandboxes) throw new QuotaError("sandboxes", t.maxSandboxes, use.n + 1);
    const mem = use.mem + memory;
    if (t.maxMemory !== null && mem > t.maxMemory) throw new QuotaError("memory", t.maxMemory, mem);
  }

  /**
   * Checks the tenant's quotas and inserts the row with a free uid slot
   * (runtime/uid-ranges.ts), atomically; returns the slot.
   */
  insertWithinQuota(r: SandboxRecord, pool: string | null, layers: readonly string[]): number {
    return this.db
      .transaction((): number => {
        this.checkQuota(r.tenant, r.spec.resources.memory);
        const slot = freeSlot(this.db, this.slots);
        uniqueOrConflict(nameTaken(r.name), () =>
          stmt(
            this.db,
            "INSERT INTO sandboxes (id, tenant_id, name, spec, state, created_at, expires_at, creator_pid, pool_key, layers, uid_slot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          ).run(r.id, r.tenant, r.name, JSON.stringify(r.spec), r.state, r.createdAt, r.expiresAt, r.creatorPid, pool, JSON.stringify(layers), slot),
        );
        return slot;
      })
      .immediate();
  }

  /** A sandbox's uid slot; null for rows from before slots were recorded (and for no row). */
  uidSlotOf(id: string): number | null {
    const row = stmt(this.db, "SELECT uid_slot FROM sandboxes WHERE id = ?").get(id) as { uid_slot: number | null } | undefined;
    return row?.uid_slot ?? null;
  }

  /**
   * Hands pooled sandbox `r.id` (waiting in pool `key`) to `r.tenant` as
   * `r`, with the quota check and the "claimed" event, in one immediate
   * transaction: the row leaves the pool (pool_key cleared) only if it is
   * still there, so no sandbox is handed out twice. False when another
   * process claimed it first.
   */
  claim(r: SandboxRecord, key: string): boolean {
    return this.db
      .transaction((): boolean => {
        this.checkQuota(r.tenant, r.spec.resources.memory);
        const { changes } = uniqueOrConflict(nameTaken(r.name), () =>
          stmt(this.db, "UPDATE sandboxes SET tenant_id = ?, name = ?, spec = ?, created_at = ?, expires_at = ?, pool_key = NULL WHERE id = ? AND pool_key = ?").run(
            r.tenant, r.name, JSON.stringify(r.spec), r.createdAt, r.expiresAt, r.id, key,
          ),
        );
        if (changes === 0) return false; // another process claimed it first
        recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "claimed", detail: { pool: key, name: r.name } });
        return true;
      })
      .immediate();
  }

  /** The oldest `n` running sandboxes waiting in pool `key`. */
  poolCandidates(key: string, n: number): SandboxRecord[] {
    return (stmt(this.db, "SELECT * FROM sandboxes WHERE pool_key = ? AND state = 'running' ORDER BY created_at LIMIT ?").all(key, n) as Row[]).map(toRecord);
  }

  /** Sandboxes waiting (or being started) in a pool. */
  waitingIn(key: string): { id: string; state: string }[] {
    return stmt(this.db, "SELECT id, state FROM sandboxes WHERE pool_key = ? ORDER BY created_at").all(key) as { id: string; state: string }[];
  }

  /** Finds a sandbox (running or stopped) by id or name, within the scope's tenant. */
  find(ref: string, scope: Scope = {}): SandboxRecord {
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

  /** A running sandbox's record; ConflictError for a stopped one. */
  running(ref: string, scope: Scope = {}): SandboxRecord {
    const r = this.find(ref, scope);
    if (r.state === "stopped") throw new SandboxNotRunningError(r.name, "stopped");
    return r;
  }

  /** Running and stopped sandboxes of a tenant, or (tenant unset) of every tenant but the pools'. */
  list(tenant: string | undefined): SandboxRecord[] {
    return (
      stmt(this.db, "SELECT * FROM sandboxes WHERE state IN ('running', 'stopped') AND ((? IS NULL AND tenant_id != '_pool') OR tenant_id = ?) ORDER BY created_at, id").all(
        tenant ?? null,
        tenant ?? null,
      ) as Row[]
    ).map(toRecord);
  }

  /** Every row, whatever its state (reconcile). */
  all(): SandboxRecord[] {
    return (stmt(this.db, "SELECT * FROM sandboxes").all() as Row[]).map(toRecord);
  }

  /** Rows in state "running". */
  allRunning(): SandboxRecord[] {
    return (stmt(this.db, "SELECT * FROM sandboxes WHERE state = 'running'").all() as Row[]).map(toRecord);
  }

  /** Running sandboxes whose timeout has passed at `now`. */
  expired(now: number): SandboxRecord[] {
    return (stmt(this.db, "SELECT * FROM sandboxes WHERE state = 'running' AND expires_at IS NOT NULL AND expires_at <= ?").all(new Date(now).toISOString()) as Row[]).map(
      toRecord,
    );
  }

  ids(): Set<string> {
    return new Set((stmt(this.db, "SELECT id FROM sandboxes").all() as { id: string }[]).map((r) => r.id));
  }

  setState(id: string, state: SandboxRecord["state"]): void {
    stmt(this.db, "UPDATE sandboxes SET state = ? WHERE id = ?").run(state, id);
  }

  setExpiry(id: string, expiresAt: string | null): void {
    stmt(this.db, "UPDATE sandboxes SET expires_at = ? WHERE id = ?").run(expiresAt, id);
  }

  /** A new spec, and the expiry with it (promote: none). */
  setSpec(id: string, spec: ResolvedSpec, expiresAt: string | null): void {
    stmt(this.db, "UPDATE sandboxes SET spec = ?, expires_at = ? WHERE id = ?").run(JSON.stringify(spec), expiresAt, id);
  }

  delete(id: string): void {
    stmt(this.db, "DELETE FROM sandboxes WHERE id = ?").run(id);
  }

  /** The layer digests a sandbox was started on; null for rows from before they were recorded. */
  layersOf(id: string): string[] | null {
    const row = stmt(this.db, "SELECT layers FROM sandboxes WHERE id = ?").get(id) as { layers: string | null } | undefined;
    return row?.layers ? (JSON.parse(row.layers) as string[]) : null;
  }

  /** Each sandbox's id, name, template and recorded layers (null: from before layers were recorded). */
  stacks(): { id: string; name: string; template: string; layers: string[] | null }[] {
    const rows = stmt(this.db, "SELECT id, name, spec, layers FROM sandboxes").all() as { id: string; name: string; spec: string; layers: string | null }[];
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      template: (JSON.parse(r.spec) as ResolvedSpec).template,
      layers: r.layers ? (JSON.parse(r.layers) as string[]) : null,
    }));
  }
}
