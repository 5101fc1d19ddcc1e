import { randomBytes } from "node:crypto";
import { ConflictError, HostError, InvalidArgumentError, NotFoundError } from "../core/errors.js";
import { parseSpec, type ResolvedSpec } from "../core/sandbox-spec.js";
import { checkName } from "../core/names.js";
import type { RuntimeContext } from "./context.js";
import { recordEvent, stmt, uniqueOrConflict } from "./db.js";
import { startNew } from "./lifecycle.js";
import { LOCAL_TENANT, type SandboxInfo, type SandboxRecord, type Scope, type SnapshotInfo } from "./records.js";


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

const nameTaken = (name: string) => `a snapshot named "${name}" already exists`;

/**
 * Saves running sandbox `running()` as snapshot `name` of its tenant: memory and
 * device state (and a persistent VM's disk) of one instant; it runs on.
 * Restores start from it in a fraction of a boot. Only backends with
 * SandboxHandle.snapshot (microVMs) can.
 */
export async function snapshot(rt: RuntimeContext, running: () => SandboxRecord, name: string): Promise<SnapshotInfo> {
  checkName("snapshot", name, "snapshot name");
  const r = running();
  const h = rt.handle(r);
  if (!h.snapshot) throw new ConflictError(`sandbox "${r.name}" is a ${r.spec.backend}: only microVM sandboxes can be snapshotted`);
  if (stmt(rt.db, "SELECT 1 FROM snapshots WHERE tenant_id = ? AND name = ?").get(r.tenant, name)) throw new ConflictError(nameTaken(name));
  const id = randomBytes(8).toString("hex");
  const layers = rt.rows.layersOf(r.id) ?? [];
  const { bytes, createdAt } = await h.snapshot(id);
  try {
    const info: SnapshotInfo = { name, tenant: r.tenant, spec: { ...r.spec, name: undefined }, source: r.name, bytes, createdAt };
    uniqueOrConflict(nameTaken(name), () =>
      stmt(rt.db, "INSERT INTO snapshots (tenant_id, name, id, spec, layers, source, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)").run(
        r.tenant, name, id, JSON.stringify(info.spec), JSON.stringify(layers), r.name, bytes, info.createdAt,
      ),
    );
    recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "snapshot", detail: { name, bytes } });
    return info;
  } catch (e) {
    await rt.backend(r.spec.backend).removeSnapshot?.(id);
    throw e;
  }
}

export function listSnapshots(rt: RuntimeContext, scope: Scope = {}): SnapshotInfo[] {
  const rows = stmt(rt.db, "SELECT * FROM snapshots WHERE tenant_id = ? ORDER BY name").all(scope.tenant ?? LOCAL_TENANT) as SnapshotRow[];
  return rows.map(toSnapshot);
}

function snapshotRow(rt: RuntimeContext, name: string, scope: Scope): SnapshotRow {
  const row = stmt(rt.db, "SELECT * FROM snapshots WHERE tenant_id = ? AND name = ?").get(scope.tenant ?? LOCAL_TENANT, name) as SnapshotRow | undefined;
  if (!row) throw new NotFoundError("snapshot", name);
  return row;
}

export async function deleteSnapshot(rt: RuntimeContext, name: string, scope: Scope = {}): Promise<void> {
  const row = snapshotRow(rt, name, scope);
  stmt(rt.db, "DELETE FROM snapshots WHERE id = ?").run(row.id);
  await rt.backend((JSON.parse(row.spec) as ResolvedSpec).backend).removeSnapshot?.(row.id);
}

/**
 * A new sandbox from snapshot `name`: the saved VM's memory, devices and
 * disk, with its own id, name, hostname and fresh randomness. The spec is
 * the snapshot's (its resources cannot change: they are in the memory
 * image); `opts.name` names the new sandbox.
 */
export async function restoreSnapshot(rt: RuntimeContext, name: string, opts: Scope & { name?: string } = {}): Promise<SandboxInfo> {
  const row = snapshotRow(rt, name, opts);
  // A fixed MAC or CID is the saved sandbox's own: the copy gets its name's.
  const { identity: _own, ...saved } = JSON.parse(row.spec) as ResolvedSpec;
  const spec = parseSpec({ ...saved, ...(opts.name ? { name: opts.name } : {}) });
  const backend = rt.backend(spec.backend);
  const { restore } = backend;
  if (!restore || !(await backend.hasSnapshot?.(row.id))) throw new HostError(`snapshot "${name}" has lost its files on this host; delete it`);
  return startNew(
    rt,
    {
      spec,
      tenant: opts.tenant ?? LOCAL_TENANT,
      layers: JSON.parse(row.layers) as string[],
      failedReason: "restore failed",
      // Its guest may carry OOM kills from before the snapshot: the count is
      // read at its first command, not taken to be 0 as for a new sandbox.
      fresh: false,
    },
    (req) => restore.call(backend, req, row.id),
    () => ({ type: "restored", detail: { snapshot: name } }),
  );
}

/** The layer stacks snapshots stand on (store gc keeps them). */
export function snapshotLayers(rt: RuntimeContext): string[][] {
  return (stmt(rt.db, "SELECT layers FROM snapshots").all() as { layers: string }[]).map((r) => JSON.parse(r.layers) as string[]);
}
