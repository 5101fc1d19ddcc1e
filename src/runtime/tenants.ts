import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { AuthError, ConflictError, InvalidArgumentError, NotFoundError } from "../core/errors.js";
import { NAME_PATTERN } from "../core/sandbox-spec.js";
import { stmt, uniqueOrConflict, type Db } from "./db.js";
import { LOCAL_TENANT } from "./records.js";

export interface Tenant {
  readonly id: string;
  /** Most sandboxes at once; null: unlimited. */
  readonly maxSandboxes: number | null;
  /** Most memory (bytes) summed over its sandboxes; null: unlimited. */
  readonly maxMemory: number | null;
  readonly createdAt: string;
}

export interface ApiKeyInfo {
  readonly id: string;
  readonly tenant: string;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
  readonly revokedAt: string | null;
}

interface TenantRow {
  id: string;
  max_sandboxes: number | null;
  max_memory: number | null;
  created_at: string;
}

const KEY_PATTERN = /^crl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const DUMMY_HASH = Buffer.alloc(32);

/** Verified keys kept at most (then forgotten all at once: rare, and only costs a hash each). */
const MAX_VERIFIED = 10_000;

const hashSecret = (secret: string) => createHash("sha256").update(secret).digest();

/**
 * Tenants and their API keys. A key is `crl_<id>_<secret>`: the id finds
 * the row, the secret is stored only as its SHA-256 and compared in
 * constant time. The plaintext key is returned once, at creation.
 */
export class Tenants {
  /**
   * Keys this process has verified, by key id: the whole key as given and
   * its tenant. A hit is one constant-time comparison instead of a hash and
   * a query on every request. Emptied whenever another connection has
   * committed to the database (PRAGMA data_version: a key revoked by the
   * CLI, say) and when this process revokes one.
   */
  private readonly verified = new Map<string, { readonly key: Buffer; readonly tenant: string }>();
  private dataVersion: unknown;
  /**
   * The operator credential of the daemon serving the state dir
   * (newOperatorKey): its id and its secret's hash, in memory only, never
   * in the database, so a daemon that dies takes it along.
   */
  private operator: { readonly id: string; readonly hash: Buffer } | undefined;

  constructor(private readonly db: Db) {}

  create(id: string, quota: { maxSandboxes?: number | null; maxMemory?: number | null } = {}): Tenant {
    if (!NAME_PATTERN.test(id)) throw new InvalidArgumentError(`tenant names are 1-63 lowercase letters, digits or '-': ${JSON.stringify(id)}`);
    uniqueOrConflict(`tenant "${id}" already exists`, () =>
      stmt(this.db, "INSERT INTO tenants (id, max_sandboxes, max_memory, created_at) VALUES (?, ?, ?, ?)")
        .run(id, quota.maxSandboxes ?? null, quota.maxMemory ?? null, new Date().toISOString()),
    );
    return this.get(id);
  }

  get(id: string): Tenant {
    const row = stmt(this.db, "SELECT * FROM tenants WHERE id = ?").get(id) as TenantRow | undefined;
    if (!row) throw new NotFoundError("tenant", id);
    return toTenant(row);
  }

  list(): Tenant[] {
    // _pool (warm pools' own tenant) is corral's, not an operator's.
    return (stmt(this.db, "SELECT * FROM tenants WHERE id != '_pool' ORDER BY id").all() as TenantRow[]).map(toTenant);
  }

  setQuota(id: string, quota: { maxSandboxes?: number | null; maxMemory?: number | null }): Tenant {
    const t = this.get(id);
    stmt(this.db, "UPDATE tenants SET max_sandboxes = ?, max_memory = ? WHERE id = ?")
      .run(quota.maxSandboxes === undefined ? t.maxSandboxes : quota.maxSandboxes, quota.maxMemory === undefined ? t.maxMemory : quota.maxMemory, id);
    return this.get(id);
  }

  /** Creates a key for the tenant (creating the tenant if new); returns the plaintext once. */
  createKey(tenant: string): { id: string; key: string } {
    try {
      this.get(tenant);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      this.create(tenant);
    }
    const id = randomBytes(6).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    stmt(this.db, "INSERT INTO api_keys (id, tenant_id, hash, created_at) VALUES (?, ?, ?, ?)")
      .run(id, tenant, hashSecret(secret).toString("hex"), new Date().toISOString());
    return { id, key: `crl_${id}_${secret}` };
  }

  /** The tenant, created (with no quota) if it does not exist. */
  ensure(id: string): Tenant {
    try {
      return this.get(id);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      return this.create(id);
    }
  }

  /**
   * Registers a key made elsewhere (the operator's key file, declared
   * state) for `tenant`, creating the tenant if new: only its secret's hash
   * is kept, as for createKey's. Nothing happens when that key is already
   * there; a key id held by another tenant or secret is a ConflictError.
   * Returns the key's id.
   */
  importKey(tenant: string, key: string): string {
    const m = KEY_PATTERN.exec(key);
    if (!m) throw new InvalidArgumentError(`an API key is crl_<12 hex digits>_<43 base64url characters>; tenant "${tenant}"'s is not`);
    this.ensure(tenant);
    const hash = hashSecret(m[2]!).toString("hex");
    const row = stmt(this.db, "SELECT tenant_id, hash, revoked_at FROM api_keys WHERE id = ?").get(m[1]) as { tenant_id: string; hash: string; revoked_at: string | null } | undefined;
    if (!row) {
      stmt(this.db, "INSERT INTO api_keys (id, tenant_id, hash, created_at) VALUES (?, ?, ?, ?)").run(m[1], tenant, hash, new Date().toISOString());
    } else if (row.tenant_id !== tenant || row.hash !== hash) {
      throw new ConflictError(`API key ${m[1]} is already registered ${row.tenant_id === tenant ? "with another secret" : `for tenant "${row.tenant_id}"`}`);
    } else if (row.revoked_at !== null) {
      stmt(this.db, "UPDATE api_keys SET revoked_at = NULL WHERE id = ?").run(m[1]);
    }
    this.verified.clear();
    return m[1]!;
  }

  keys(tenant?: string): ApiKeyInfo[] {
    const rows = (
      tenant === undefined
        ? stmt(this.db, "SELECT * FROM api_keys ORDER BY created_at").all()
        : stmt(this.db, "SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at").all(tenant)
    ) as { id: string; tenant_id: string; created_at: string; last_used_at: string | null; revoked_at: string | null }[];
    return rows.map((r) => ({ id: r.id, tenant: r.tenant_id, createdAt: r.created_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at }));
  }

  revokeKey(id: string): void {
    const r = stmt(this.db, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(new Date().toISOString(), id);
    this.verified.clear();
    if (r.changes === 0) throw new NotFoundError("api_key", id);
  }

  /**
   * A new operator credential, replacing this process's last one: the key
   * with which `corral` commands on a served state dir act through its
   * daemon (state-dir-lock.ts writes it beside daemon.json). It acts as
   * the state dir's own tenant (LOCAL_TENANT, whose sandboxes the CLI
   * makes) with an admin's rights (isOperator).
   */
  newOperatorKey(): string {
    let id: string;
    do id = randomBytes(6).toString("hex");
    while (stmt(this.db, "SELECT 1 FROM api_keys WHERE id = ?").get(id));
    const secret = randomBytes(32).toString("base64url");
    this.operator = { id, hash: hashSecret(secret) };
    this.verified.clear();
    return `crl_${id}_${secret}`;
  }

  /** No operator credential any more (the daemon stopping). */
  dropOperatorKey(): void {
    this.operator = undefined;
    this.verified.clear();
  }

  /** Whether `key` is this process's operator credential (constant time in the secret). */
  isOperator(key: string | undefined): boolean {
    const m = key ? KEY_PATTERN.exec(key) : null;
    const op = this.operator;
    return !!m && op !== undefined && m[1] === op.id && timingSafeEqual(op.hash, hashSecret(m[2]!));
  }

  /** The tenant a key belongs to; AuthError for anything else. */
  authenticate(key: string | undefined): string {
    if (this.isOperator(key)) return LOCAL_TENANT;
    const m = key ? KEY_PATTERN.exec(key) : null;
    if (m && this.noOtherWrites()) {
      const hit = this.verified.get(m[1]!);
      const given = Buffer.from(key!);
      if (hit && hit.key.length === given.length && timingSafeEqual(hit.key, given)) return hit.tenant;
    }
    const row = m
      ? (stmt(this.db, "SELECT tenant_id, hash, revoked_at FROM api_keys WHERE id = ?").get(m[1]) as
          | { tenant_id: string; hash: string; revoked_at: string | null }
          | undefined)
      : undefined;
    // Compare even when there is no row, so timing does not tell ids apart.
    const expected = row ? Buffer.from(row.hash, "hex") : DUMMY_HASH;
    const given = hashSecret(m?.[2] ?? "");
    const ok = timingSafeEqual(expected, given) && row !== undefined && row.revoked_at === null;
    if (!ok || !m) throw new AuthError(key ? "the API key is not valid" : undefined);
    if (this.verified.size >= MAX_VERIFIED) this.verified.clear();
    this.verified.set(m[1]!, { key: Buffer.from(m[0]), tenant: row.tenant_id });
    return row.tenant_id;
  }

  /** True when no other connection has committed since the last call; otherwise forgets the verified keys. */
  private noOtherWrites(): boolean {
    const v = stmt(this.db, "PRAGMA data_version").pluck().get();
    if (v === this.dataVersion) return true;
    this.dataVersion = v;
    this.verified.clear();
    return false;
  }
}

function toTenant(r: TenantRow): Tenant {
  return { id: r.id, maxSandboxes: r.max_sandboxes, maxMemory: r.max_memory, createdAt: r.created_at };
}
