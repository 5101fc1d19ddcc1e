import Database from "better-sqlite3";
import { ConflictError } from "../core/errors.js";

export type Db = Database.Database;

/**
 * Schema migrations, applied in order; PRAGMA user_version records how many
 * ran. Append only: never edit a migration that has shipped.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    max_sandboxes INTEGER,
    max_memory INTEGER,
    created_at TEXT NOT NULL
  );
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
  );
  CREATE TABLE sandboxes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('creating', 'running')),
    created_at TEXT NOT NULL,
    expires_at TEXT,
    creator_pid INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
  );
  CREATE INDEX sandboxes_tenant ON sandboxes (tenant_id);
  CREATE INDEX sandboxes_expiry ON sandboxes (expires_at) WHERE expires_at IS NOT NULL;
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    tenant_id TEXT,
    sandbox_id TEXT,
    type TEXT NOT NULL,
    detail TEXT
  );
  CREATE INDEX events_sandbox ON events (sandbox_id);
  INSERT INTO tenants (id, created_at) VALUES ('local', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
  `,
  // Persistent sandboxes can be stopped (their disk kept) and started again.
  `
  CREATE TABLE sandboxes_v2 (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('creating', 'running', 'stopped')),
    created_at TEXT NOT NULL,
    expires_at TEXT,
    creator_pid INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
  );
  INSERT INTO sandboxes_v2 SELECT id, tenant_id, name, spec, state, created_at, expires_at, creator_pid FROM sandboxes;
  DROP TABLE sandboxes;
  ALTER TABLE sandboxes_v2 RENAME TO sandboxes;
  CREATE INDEX sandboxes_tenant ON sandboxes (tenant_id);
  CREATE INDEX sandboxes_expiry ON sandboxes (expires_at) WHERE expires_at IS NOT NULL;
  `,
  // Warm pools: configured targets, and pre-started sandboxes waiting in them
  // (pool_key set until a create claims one) under the reserved tenant _pool.
  `
  ALTER TABLE sandboxes ADD COLUMN pool_key TEXT;
  CREATE INDEX sandboxes_pool ON sandboxes (pool_key) WHERE pool_key IS NOT NULL;
  CREATE TABLE pools (
    key TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    resources TEXT NOT NULL,
    target INTEGER NOT NULL CHECK (target >= 0),
    created_at TEXT NOT NULL
  );
  INSERT INTO tenants (id, created_at) VALUES ('_pool', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
  `,
  // The layers a sandbox was started on (JSON array of digests), so store gc
  // keeps them even after its template is rebuilt or removed.
  `
  ALTER TABLE sandboxes ADD COLUMN layers TEXT;
  `,
  // Pools of microVMs (filled from snapshots) beside pools of containers.
  `
  ALTER TABLE pools ADD COLUMN backend TEXT NOT NULL DEFAULT 'container';
  `,
  // Saved microVMs (memory, device state, disk) a tenant can restore from.
  `
  CREATE TABLE snapshots (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    layers TEXT NOT NULL,
    source TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
  );
  `,
  // What the operator's declared state (runtime/declared.ts) made: sandboxes
  // by declared name (with the hash of their declaration), pools, API keys.
  // Only these are changed or removed when the declaration changes.
  `
  CREATE TABLE declared (
    kind TEXT NOT NULL CHECK (kind IN ('sandbox', 'pool', 'key')),
    name TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    sandbox_id TEXT,
    hash TEXT NOT NULL,
    PRIMARY KEY (kind, name)
  );
  CREATE INDEX declared_sandbox ON declared (sandbox_id) WHERE sandbox_id IS NOT NULL;
  `,
  // Pools of sandboxes on corral's network (nat) beside those without one.
  `
  ALTER TABLE pools ADD COLUMN network TEXT NOT NULL DEFAULT 'none';
  `,
  // Each sandbox's own host uid range (runtime/uid-ranges.ts): its slot,
  // unique; NULL for rows from before (they keep the shared range).
  `
  ALTER TABLE sandboxes ADD COLUMN uid_slot INTEGER;
  CREATE UNIQUE INDEX sandboxes_uid_slot ON sandboxes (uid_slot) WHERE uid_slot IS NOT NULL;
  `,
  // SSH public keys a tenant's users log in to its sandboxes with (issue 15).
  `
  CREATE TABLE ssh_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    type TEXT NOT NULL,
    blob BLOB NOT NULL,
    comment TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (tenant_id, fingerprint)
  );
  `,
];

/** Opens (creating if needed) the state database: WAL, foreign keys, migrated. */
export function openDatabase(file: string): Db {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db);
  return db;
}

export function migrate(db: Db): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new Error(`the state database is at schema ${version}, newer than this corral (${MIGRATIONS.length}); upgrade corral`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

export function recordEvent(db: Db, e: { tenant?: string; sandbox?: string; type: string; detail?: unknown }): void {
  stmt(db, "INSERT INTO events (at, tenant_id, sandbox_id, type, detail) VALUES (?, ?, ?, ?, ?)").run(
    new Date().toISOString(),
    e.tenant ?? null,
    e.sandbox ?? null,
    e.type,
    e.detail === undefined ? null : JSON.stringify(e.detail),
  );
}

const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/** A prepared statement, compiled once per database and reused (hot paths: auth, list). */
export function stmt(db: Db, sql: string): Database.Statement {
  let m = statements.get(db);
  if (!m) statements.set(db, (m = new Map()));
  let s = m.get(sql);
  if (!s) m.set(sql, (s = db.prepare(sql)));
  return s;
}

/**
 * Runs a write; a UNIQUE or PRIMARY KEY violation (a name already taken)
 * becomes a ConflictError saying `message`: the one place a constraint of
 * the database turns into an answer to the caller.
 */
export function uniqueOrConflict<T>(message: string, write: () => T): T {
  try {
    return write();
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") throw new ConflictError(message);
    throw e;
  }
}
