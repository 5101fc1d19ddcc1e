import fs from "node:fs";
import path from "node:path";
import { rangeBase } from "./uid-ranges.js";
import type { BackendKind, SandboxBackend, SandboxHandle, SandboxStatus } from "../backends/backend.js";
import { HostError } from "../core/errors.js";
import type { ResolvedSpec } from "../core/sandbox-spec.js";
import type { Host } from "../host/host.js";
import type { Networks } from "../network/networks.js";
import type { Store } from "../store/store.js";
import { Connections } from "./connections.js";
import { recordEvent, stmt, type Db } from "./db.js";
import type { SandboxInfo, SandboxRecord } from "./records.js";
import { SandboxRows } from "./sandbox-rows.js";
import { Pools } from "./pools.js";
import { Tenants } from "./tenants.js";
import { SharePolicy } from "./shares.js";
import type { StateDirLock } from "./state-dir-lock.js";
import type { HostClaims } from "./host-claims.js";
import { SpaceReserve } from "./state-space.js";

/** What the runtime reads of the host itself (the backends do the rest). */
export type RuntimeHost = Pick<Host, "cgroupMode" | "cgroupChildren" | "pidAlive">;

/** What an open state dir is made of, however it was opened (open-state-dir.ts). */
export interface StateDirParts {
  readonly stateDir: string;
  readonly uidBase: number;
  readonly cgroupParent: string;
  readonly store: Store;
  readonly db: Db;
  readonly backends: ReadonlyMap<BackendKind, SandboxBackend>;
  readonly host: RuntimeHost;
  readonly longLived: boolean;
  /** Held while open by the daemon (state-dir-lock.ts). */
  readonly lock?: StateDirLock;
  /** What this state dir holds of the host's shared things (its uid blocks), on a real host (host-claims.ts). */
  readonly claims?: HostClaims;
  /** Networking of the state dir (absent over injected backends: only network "none"). */
  readonly net?: Networks;
}

/**
 * The runtime's shared parts, handed to each of its modules (lifecycle,
 * pool claims, snapshots, commit, storage, reconcile): the database rows,
 * the backends, the connections this process keeps, and the few steps
 * they all take (a sandbox's directory, handle and status; its removal).
 */
export class RuntimeContext {
  readonly sandboxesDir: string;
  readonly tenants: Tenants;
  readonly pools: Pools;
  readonly rows: SandboxRows;
  readonly conns: Connections;
  /** Pooled sandboxes a claim in this process is checking (pool-claims.ts). */
  readonly claiming = new Set<string>();
  /** The host directories sandboxes may see (shares.ts). */
  readonly shares: SharePolicy;
  /** Room kept to record what has happened when the state filesystem is full (state-space.ts). */
  readonly space: SpaceReserve;
  /** The backend of a create whose spec names none (the declared state's defaultBackend); unset: the spec's default. */
  defaultBackend: BackendKind | undefined;

  constructor(readonly parts: StateDirParts) {
    this.sandboxesDir = path.join(parts.stateDir, "sandboxes");
    this.tenants = new Tenants(parts.db);
    this.rows = new SandboxRows(parts.db, this.tenants, parts.claims?.slotBlocks(fs.realpathSync(parts.stateDir), parts.uidBase));
    this.pools = new Pools(parts.db, this.rows);
    this.conns = new Connections(parts.db, (r) => this.handle(r), parts.longLived);
    this.shares = new SharePolicy(parts.stateDir);
    this.space = new SpaceReserve(parts.stateDir);
    this.space.ensure();
  }

  get db(): Db {
    return this.parts.db;
  }

  get store(): Store {
    return this.parts.store;
  }

  dirOf(id: string): string {
    return path.join(this.sandboxesDir, id);
  }

  /** The host uid that is root in sandbox `id` (its own range); undefined for a row from before ranges (the shared one). */
  uidBaseOf(id: string): number | undefined {
    const slot = this.rows.uidSlotOf(id);
    return slot === null ? undefined : rangeBase(this.parts.uidBase, slot);
  }

  /** The backend of a kind. */
  backend(kind: BackendKind): SandboxBackend {
    const b = this.parts.backends.get(kind);
    if (!b) throw new HostError(`the ${kind} backend is not available`);
    return b;
  }

  handle(r: Pick<SandboxRecord, "id" | "spec">): SandboxHandle {
    return this.backend(r.spec.backend).attach(r.id, this.dirOf(r.id));
  }

  /** What get and list return: the record, its status, and its identity where its backend gives one. */
  info(r: SandboxRecord, status: SandboxStatus): SandboxInfo {
    const identity = this.parts.backends.get(r.spec.backend)?.identity?.(r.name, r.spec);
    // Made by the operator's declared state (declared.ts)?
    const declared = stmt(this.db, "SELECT 1 FROM declared WHERE kind = 'sandbox' AND sandbox_id = ?").get(r.id) !== undefined;
    return { ...r, status, ...(identity ? { identity } : {}), ...(declared ? { declared } : {}) };
  }

  async withStatus(r: SandboxRecord): Promise<SandboxInfo> {
    return this.info(r, r.state === "stopped" ? "stopped" : await this.handle(r).status());
  }

  /**
   * Sandboxes an operation of this process is changing (a stop, a start,
   * a removal), with how many: the watch (dead-sandboxes.ts) leaves them
   * to it rather than take a stop in progress for a death.
   */
  private readonly working = new Map<string, number>();

  /** Runs `fn` with sandbox `id` marked busy. */
  async guard<T>(id: string, fn: () => Promise<T>): Promise<T> {
    this.working.set(id, (this.working.get(id) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      const n = (this.working.get(id) ?? 1) - 1;
      if (n > 0) this.working.set(id, n);
      else this.working.delete(id);
    }
  }

  get busy(): { has(id: string): boolean } {
    return this.working;
  }

  /** Removes a sandbox from the host and the database, recording why. */
  async remove(id: string, tenant: string | undefined, reason: string, spec?: ResolvedSpec): Promise<void> {
    await this.guard(id, async () => {
      this.conns.drop(id);
      if (spec) await this.handle({ id, spec }).destroy();
      else await this.destroyUnknown(id);
      await this.parts.net?.detach(id);
      this.space.record(this.db, () => {
        this.rows.delete(id);
        recordEvent(this.db, { ...(tenant ? { tenant } : {}), sandbox: id, type: "destroyed", detail: { reason } });
      });
    });
  }

  /**
   * Removes a sandbox whose kind is not known (host state without a row):
   * every backend's destroy is idempotent and removes what is its own.
   */
  async destroyUnknown(id: string): Promise<void> {
    for (const b of this.parts.backends.values()) await b.attach(id, this.dirOf(id)).destroy();
  }
}
