import fsp from "node:fs/promises";
import { BackendError } from "../../src/core/errors.js";
import type { AgentClient } from "../../src/agent/client.js";
import type {
  BackendKind,
  BackendReport,
  CreateRequest,
  SandboxBackend,
  SandboxHandle,
  SandboxIdentity,
  SandboxStatus,
  SnapshotSaved,
  UsageSample,
} from "../../src/backends/backend.js";

/** What the fake backend holds for one sandbox (the test may change status to simulate a crash). */
export interface FakeSandbox {
  status: SandboxStatus;
  hostname: string;
  readonly persistent: boolean;
  readonly layers: readonly string[];
  readonly fromSnapshot?: string;
}

/**
 * A SandboxBackend in memory, for unit tests of the runtime without root:
 * sandboxes are entries of `sandboxes`, host state outside their
 * directories is `hostOnly`, and every call is appended to `calls` ("create
 * ID", "destroy ID", "stop ID", "rename ID NAME", "sweep", ...).
 */
export class FakeBackend implements SandboxBackend {
  readonly sandboxes = new Map<string, FakeSandbox>();
  /** Ids this backend reports from hostIds() (state outside sandbox dirs). */
  readonly hostOnly = new Set<string>();
  readonly calls: string[] = [];
  /** The next create or start fails with this, after it has made its sandbox (so undo is exercised). */
  failNext: Error | undefined;

  constructor(readonly kind: BackendKind = "container") {}

  async probe(): Promise<BackendReport> {
    return { kind: this.kind, available: true, notes: ["fake"] };
  }

  async create(req: CreateRequest): Promise<SandboxHandle> {
    this.calls.push(`create ${req.id}`);
    await fsp.access(req.dir); // the runtime made it
    this.sandboxes.set(req.id, { status: "running", hostname: req.hostname, persistent: req.spec.lifetime.mode === "persistent", layers: req.layers });
    this.maybeFail();
    return this.attach(req.id, req.dir);
  }

  async start(req: CreateRequest): Promise<SandboxHandle> {
    this.calls.push(`start ${req.id}`);
    const sb = this.sandboxes.get(req.id);
    if (!sb) throw new BackendError(`no sandbox ${req.id}`);
    sb.status = "running";
    this.maybeFail();
    return this.attach(req.id, req.dir);
  }

  protected maybeFail(): void {
    const e = this.failNext;
    this.failNext = undefined;
    if (e) throw e;
  }

  attach(id: string, dir: string): SandboxHandle {
    return new FakeHandle(id, dir, this);
  }

  async hostIds(): Promise<string[]> {
    return [...this.hostOnly];
  }

  async sweep(): Promise<void> {
    this.calls.push("sweep");
  }

  close(): void {
    this.calls.push("close");
  }
}

export class FakeHandle implements SandboxHandle {
  constructor(
    readonly id: string,
    readonly dir: string,
    protected readonly b: FakeBackend,
  ) {}

  agent(): Promise<AgentClient> {
    return Promise.reject(new BackendError("the fake backend has no agent"));
  }
  async status(): Promise<SandboxStatus> {
    return this.b.sandboxes.get(this.id)?.status ?? "missing";
  }
  async stats(): Promise<UsageSample> {
    return { cpuNanos: 0, memoryBytes: 0, pids: 1, oomKills: 0 };
  }
  async oomKills(): Promise<number> {
    return 0;
  }
  async rename(hostname: string): Promise<void> {
    this.b.calls.push(`rename ${this.id} ${hostname}`);
    const sb = this.b.sandboxes.get(this.id);
    if (sb) sb.hostname = hostname;
  }
  async stop(): Promise<void> {
    this.b.calls.push(`stop ${this.id}`);
    const sb = this.b.sandboxes.get(this.id);
    if (sb) sb.status = "stopped";
  }
  async destroy(): Promise<void> {
    this.b.calls.push(`destroy ${this.id}`);
    this.b.sandboxes.delete(this.id);
    this.b.hostOnly.delete(this.id);
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
  async logs(): Promise<string> {
    return "";
  }
  hasDisk(): boolean {
    return this.b.sandboxes.get(this.id)?.persistent ?? false;
  }
  async exportWritableLayer(): Promise<void> {
    throw new BackendError("the fake backend keeps no writable layer");
  }
}

/** A fake microVM backend: snapshots (in memory), restore, and an identity from the name. */
export class FakeVmBackend extends FakeBackend {
  /** Snapshot ids with their files "on the host", and their size. */
  readonly snapshots = new Map<string, number>();

  constructor() {
    super("vm");
  }

  override attach(id: string, dir: string): SandboxHandle {
    return new FakeVmHandle(id, dir, this);
  }

  async restore(req: CreateRequest, snapshotId: string): Promise<SandboxHandle> {
    this.calls.push(`restore ${req.id} ${snapshotId}`);
    if (!this.snapshots.has(snapshotId)) throw new BackendError(`no snapshot ${snapshotId}`);
    this.sandboxes.set(req.id, { status: "running", hostname: req.hostname, persistent: false, layers: req.layers, fromSnapshot: snapshotId });
    this.maybeFail();
    return this.attach(req.id, req.dir);
  }

  async hasSnapshot(snapshotId: string): Promise<boolean> {
    return this.snapshots.has(snapshotId);
  }

  async removeSnapshot(snapshotId: string): Promise<void> {
    this.calls.push(`removeSnapshot ${snapshotId}`);
    this.snapshots.delete(snapshotId);
  }

  identity(name: string): SandboxIdentity {
    return { mac: `02:00:00:00:00:${(name.length % 256).toString(16).padStart(2, "0")}`, cid: 3 + name.length, tap: `tap-${name}`.slice(0, 15) };
  }
}

class FakeVmHandle extends FakeHandle {
  async snapshot(snapshotId: string): Promise<SnapshotSaved> {
    this.b.calls.push(`snapshot ${this.id} ${snapshotId}`);
    (this.b as FakeVmBackend).snapshots.set(snapshotId, 4096);
    return { bytes: 4096, createdAt: new Date().toISOString() };
  }
}
