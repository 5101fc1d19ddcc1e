import type { AgentClient, ExecCallbacks, ExecRequest } from "../agent/client.js";
import type { BackendKind, SandboxBackend, UsageSample } from "../backends/backend.js";
import type { CgroupMode } from "../host/cgroups.js";
import type { ProgressFn } from "../store/builders/builder.js";
import type { Store, TemplateRecord } from "../store/store.js";
import { buildNixTemplate, type NixTemplateOptions } from "../store/nix/nix-template.js";
import { Checkpointer } from "./checkpointer.js";
import { RuntimeContext, type StateDirParts } from "./context.js";
import type { StartedExec } from "./connections.js";
import type { Db } from "./db.js";
import * as lifecycle from "./lifecycle.js";
import { allowedSharesOf, openInjected, openStateDir, type InjectedOptions, type SandboxesOptions } from "./open-state-dir.js";
import { setNetwork } from "./network.js";
import type { NetworkInput } from "../core/network-spec.js";
import { refillPools } from "./pool-claims.js";
import type { Pools } from "./pools.js";
import type { ExecOutcome, SandboxInfo, SandboxRecord, Scope, SnapshotInfo } from "./records.js";
import { reapExpired, reconcile } from "./reconcile.js";
import { daemonServes } from "./state-dir-lock.js";
import { watchPass } from "./dead-sandboxes.js";
import * as snapshots from "./snapshots.js";
import { diskUsage, gc, layersInUse, type DiskUsage } from "./storage.js";
import { commit } from "./template-commit.js";
import { applyDeclared, type DeclaredReport } from "./declared.js";
import type { DeclaredState } from "./declared-state.js";
import type { Tenants } from "./tenants.js";
import { SshKeys } from "./ssh-keys.js";

export { DEFAULT_STATE_DIR, DEFAULT_UID_BASE, type InjectedOptions, type SandboxesOptions } from "./open-state-dir.js";
export { LOCAL_TENANT, type ExecOutcome, type SandboxInfo, type SandboxRecord, type Scope, type SnapshotInfo } from "./records.js";

/**
 * The library's front door: create, find, use and remove sandboxes. State
 * is an SQLite database in the state dir (WAL), so any number of processes
 * (CLI invocations, the daemon) can share it. Each responsibility is a
 * module of its own (DESIGN.md, "The runtime"); this class opens the state
 * dir and hands each call to one of them.
 */
export class Sandboxes {
  readonly stateDir: string;
  readonly uidBase: number;
  readonly cgroupParent: string;
  readonly store: Store;
  readonly db: Db;
  readonly tenants: Tenants;
  /** Tenants' SSH public keys (issue 15: SSH into sandboxes). */
  readonly sshKeys: SshKeys;
  readonly pools: Pools;
  /** How this host's cgroups are mounted (v2, hybrid or v1). */
  readonly cgroupMode: CgroupMode;
  private readonly rt: RuntimeContext;
  /** longLived: checkpoints the database in a worker thread (see Checkpointer). */
  private readonly checkpointer: Checkpointer | undefined;

  private constructor(parts: StateDirParts) {
    ({ stateDir: this.stateDir, uidBase: this.uidBase, cgroupParent: this.cgroupParent, store: this.store, db: this.db } = parts);
    this.cgroupMode = parts.host.cgroupMode;
    this.rt = new RuntimeContext(parts);
    this.tenants = this.rt.tenants;
    this.sshKeys = new SshKeys(parts.db, this.rt.tenants);
    this.pools = this.rt.pools;
    const db = parts.db;
    if (parts.longLived) {
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
  }

  private static async opened(parts: StateDirParts, opts: SandboxesOptions): Promise<Sandboxes> {
    const s = new Sandboxes(parts);
    try {
      await s.allowShares(allowedSharesOf(opts));
      // While a daemon serves the state dir it alone reconciles: a CLI's
      // reconcile racing it could take a sandbox it is making or removing
      // for an orphan.
      if (parts.lock || !daemonServes(parts.stateDir)) await s.reconcile();
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /** Opens a state dir on this host (root; the registry's backends), reconciling it with the host. */
  static async open(opts: SandboxesOptions = {}): Promise<Sandboxes> {
    return Sandboxes.opened(await openStateDir(opts), opts);
  }

  /** Opens a state dir over the caller's backends (unit tests: a fake backend, no root), reconciling it. */
  static async openWith(opts: InjectedOptions): Promise<Sandboxes> {
    return Sandboxes.opened(await openInjected(opts), opts);
  }

  /** Lets go of the network slots this process made ahead of need (a daemon closing: before close()). */
  async releaseNetworkSpares(): Promise<void> {
    await this.rt.parts.net?.releaseSpares();
  }

  close(): void {
    void this.checkpointer?.close();
    this.rt.conns.close();
    for (const b of this.rt.parts.backends.values()) b.close?.();
    this.tenants.dropOperatorKey();
    this.db.close();
    this.rt.parts.claims?.close();
    this.rt.parts.lock?.release();
  }

  /**
   * Says where the daemon holding the state dir's lock listens
   * (`<state>/daemon.json`) and the operator credential `corral` commands
   * on the state dir use meanwhile (`daemon.key`, a new one each start:
   * Tenants.newOperatorKey); only with `lock`.
   */
  announceDaemon(url: string): void {
    const lock = this.rt.parts.lock;
    if (lock) lock.record({ pid: process.pid, url, since: new Date().toISOString() }, this.tenants.newOperatorKey());
  }

  /** The quota of tenants without their own (sandbox-rows.ts checkQuota); the daemon sets it from its flags. */
  setDefaultQuota(q: { readonly maxSandboxes: number | null; readonly maxMemory: number | null }): void {
    this.rt.rows.defaultQuota = { maxSandboxes: q.maxSandboxes, maxMemory: q.maxMemory };
  }

  /** The backend of a kind (tests and benches probe them). */
  backend(kind: BackendKind): SandboxBackend {
    return this.rt.backend(kind);
  }

  /**
   * Starts a sandbox: claimed from a warm pool when one of the same shape
   * has a sandbox ready, otherwise built (template first, if needed) and
   * started cold. `pool` (internal) starts one to wait in that pool.
   */
  async create(input: unknown, opts: Scope & { onProgress?: ProgressFn; pool?: string } = {}): Promise<SandboxInfo> {
    return lifecycle.create(this.rt, input, opts);
  }

  /** Brings every pool to its target (pool-claims.ts refillPools); the daemon calls it on a timer. */
  async refillPools(opts: { beforeStart?: () => Promise<void> } = {}): Promise<{ started: number; removed: number }> {
    return refillPools(this.rt, (input, o) => this.create(input, o), opts);
  }

  /** Sets the host directories sandboxes may see through `shares` (shares.ts; the daemon's SIGHUP reloads them). */
  async allowShares(dirs: readonly string[]): Promise<void> {
    await this.rt.shares.allow(dirs);
  }

  /**
   * Makes sandboxes, pools, keys and allowed shares what the operator's
   * declared state says (declared.ts), touching only what it made before.
   * `daemonShares`: directories allowed besides the state's (--allow-share).
   */
  async applyDeclared(state: DeclaredState, daemonShares: readonly string[] = []): Promise<DeclaredReport> {
    return applyDeclared(this.rt, state, daemonShares);
  }

  /** The allowed share directories, as real paths. */
  get allowedShares(): readonly string[] {
    return this.rt.shares.allowed;
  }

  /** Finds a sandbox (running or stopped) by id or name, within the scope's tenant. */
  record(ref: string, scope: Scope = {}): SandboxRecord {
    return this.rt.rows.find(ref, scope);
  }

  /** The host uid that is root in the sandbox: the first of its own 65536 (runtime/uid-ranges.ts). */
  uidBaseOf(ref: string, scope: Scope = {}): number {
    return this.rt.uidBaseOf(this.record(ref, scope).id) ?? this.uidBase;
  }

  async get(ref: string, scope: Scope = {}): Promise<SandboxInfo> {
    return this.rt.withStatus(this.record(ref, scope));
  }

  /** Sandboxes in scope (running and stopped), optionally only those carrying every given label. */
  async list(opts: Scope & { labels?: Readonly<Record<string, string>> } = {}): Promise<SandboxInfo[]> {
    const { labels } = opts;
    const wanted = this.rt.rows.list(opts.tenant).filter((r) => !labels || Object.entries(labels).every(([k, v]) => r.spec.labels[k] === v));
    return Promise.all(wanted.map((r) => this.rt.withStatus(r)));
  }

  /** A running sandbox's record; ConflictError for a stopped one. */
  running(ref: string, scope: Scope = {}): SandboxRecord {
    return this.rt.rows.running(ref, scope);
  }

  /** A fresh connection to the sandbox's agent; the caller closes it. */
  async agent(ref: string, scope: Scope = {}): Promise<AgentClient> {
    return this.rt.conns.connect(this.running(ref, scope));
  }

  async stats(ref: string, scope: Scope = {}): Promise<UsageSample> {
    return this.rt.handle(this.running(ref, scope)).stats();
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

  /** Starts a command and hands back its handle and outcome (connections.ts startExec); the caller calls `end`. */
  async startExec(ref: string, req: ExecRequest, cb: ExecCallbacks = {}, scope: Scope = {}): Promise<StartedExec> {
    return this.rt.conns.startExec(this.running(ref, scope), req, cb);
  }

  /** What to report for a command that failed to start: sandbox_not_running when its host side died (connections.ts deadOr). */
  async whyFailed(r: SandboxRecord, e: unknown): Promise<unknown> {
    return this.rt.conns.deadOr(r, e);
  }

  /** Sets (seconds from now) or clears (null) when the sandbox is removed. */
  setTimeout(ref: string, seconds: number | null, scope: Scope = {}): SandboxRecord {
    return lifecycle.setTimeout(this.rt, this.record(ref, scope), seconds);
  }

  /** Changes a sandbox's egress policy, named networks and ports, at once (runtime/network.ts). */
  async setNetwork(ref: string, network: NetworkInput, scope: Scope = {}): Promise<SandboxRecord> {
    return setNetwork(this.rt, this.record(ref, scope), network);
  }

  /** Makes an ephemeral sandbox persistent: no timeout, kept until removed. */
  promote(ref: string, scope: Scope = {}): SandboxRecord {
    return lifecycle.promote(this.rt, this.record(ref, scope));
  }

  /** Stops a persistent sandbox, keeping its disk (lifecycle.ts stop). */
  async stop(ref: string, scope: Scope = {}): Promise<SandboxInfo> {
    return lifecycle.stop(this.rt, this.record(ref, scope));
  }

  /** Starts a stopped sandbox again, with the disk it had. */
  async start(ref: string, scope: Scope = {}): Promise<SandboxInfo> {
    return lifecycle.start(this.rt, this.record(ref, scope));
  }

  /** Makes a new template from a persistent sandbox (template-commit.ts). */
  async commit(ref: string, templateName: string, scope: Scope = {}): Promise<TemplateRecord> {
    return commit(this.rt, () => this.record(ref, scope), templateName);
  }

  /** Builds (or rebuilds) a template from a Nix file; see store/nix/nix-template.ts. */
  buildNixTemplate(name: string, file: string, opts: NixTemplateOptions, onProgress?: ProgressFn): Promise<TemplateRecord> {
    return buildNixTemplate(this.store, name, file, opts, onProgress);
  }

  /** Stops and removes a sandbox and everything it had on the host. */
  async destroy(ref: string, scope: Scope = {}, reason = "removed"): Promise<void> {
    const r = this.record(ref, scope);
    await this.rt.remove(r.id, r.tenant, reason, r.spec);
  }

  /**
   * The last `maxBytes` of what a sandbox printed outside any exec: a VM's
   * serial console (kernel messages, a panic, the guest init), a
   * container's runtime log.
   */
  async logs(ref: string, scope: Scope = {}, maxBytes = 64 * 1024): Promise<string> {
    return this.rt.handle(this.record(ref, scope)).logs(maxBytes);
  }

  /** Saves a running microVM as snapshot `name` of its tenant (snapshots.ts). */
  async snapshot(ref: string, name: string, scope: Scope = {}): Promise<SnapshotInfo> {
    return snapshots.snapshot(this.rt, () => this.running(ref, scope), name);
  }

  listSnapshots(scope: Scope = {}): SnapshotInfo[] {
    return snapshots.listSnapshots(this.rt, scope);
  }

  async deleteSnapshot(name: string, scope: Scope = {}): Promise<void> {
    return snapshots.deleteSnapshot(this.rt, name, scope);
  }

  /** A new sandbox from snapshot `name`, named `opts.name` (snapshots.ts). */
  async restoreSnapshot(name: string, opts: Scope & { name?: string } = {}): Promise<SandboxInfo> {
    return snapshots.restoreSnapshot(this.rt, name, opts);
  }

  /** Layer digests some sandbox or snapshot stands on. */
  async layersInUse(): Promise<Set<string>> {
    return layersInUse(this.rt);
  }

  /** What the store and the sandboxes use on disk (storage.ts). */
  async diskUsage(): Promise<DiskUsage> {
    return diskUsage(this.rt);
  }

  /** Removes layers no template names and no sandbox stands on. */
  async gc(graceMs?: number): Promise<{ removed: string[]; images: string[]; freedBytes: number }> {
    return gc(this.rt, graceMs);
  }

  /**
   * Settles running sandboxes whose host side has died (dead-sandboxes.ts):
   * the daemon calls it every 500 ms.
   */
  async watchDead(): Promise<{ id: string; outcome: "removed" | "stopped" }[]> {
    return watchPass(this.rt);
  }

  /** Removes every sandbox whose timeout has passed; returns their ids. */
  async reapExpired(now = Date.now()): Promise<string[]> {
    this.rt.space.ensure();
    return reapExpired(this.rt, now);
  }

  /** Makes host and database agree after a crash, both ways (reconcile.ts). */
  async reconcile(): Promise<{ removed: string[] }> {
    return reconcile(this.rt);
  }
}
