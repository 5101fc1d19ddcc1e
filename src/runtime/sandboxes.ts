import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { AgentClient, ExecCallbacks, ExecRequest, ExecResult } from "../agent/client.js";
import type { SandboxBackend, SandboxHandle, SandboxStatus } from "../backends/backend.js";
import { ContainerBackend } from "../backends/container/container-backend.js";
import { nativeBinary } from "../host/native.js";
import { pidAlive } from "../host/process.js";
import { ConflictError, HostError, InvalidArgumentError, NotFoundError } from "../spec/errors.js";
import { parseSpec, type ResolvedSpec } from "../spec/sandbox-spec.js";
import type { ProgressFn } from "../store/builders/builder.js";
import { Store, writeJsonAtomic } from "../store/store.js";

export const DEFAULT_STATE_DIR = "/var/lib/corral";
/**
 * Host uid of root inside every sandbox: inside the range systemd sets
 * aside for containers (524288-1879048191), away from /etc/subuid's usual
 * 100000+ allocations.
 */
export const DEFAULT_UID_BASE = 0x60000000;

export interface SandboxesOptions {
  readonly stateDir?: string;
  readonly uidBase?: number;
  /** Parent cgroup for all sandboxes of this state dir (default $CORRAL_CGROUP_PARENT or "corral"). */
  readonly cgroupParent?: string;
}

export interface SandboxRecord {
  readonly id: string;
  readonly name: string;
  readonly spec: ResolvedSpec;
  readonly createdAt: string;
  /** When an ephemeral sandbox is removed; null for none. */
  readonly expiresAt: string | null;
  readonly state: "creating" | "running";
  /** Pid of the process creating it, to tell a crash from work in progress. */
  readonly creatorPid: number;
}

export interface SandboxInfo extends SandboxRecord {
  readonly status: SandboxStatus;
}

export interface ExecOutcome extends ExecResult {
  /** The kernel's OOM killer ended the command (memory limit). */
  readonly oomKilled: boolean;
}

const ID_PATTERN = /^[0-9a-f]{16}$/;

/**
 * The library's front door: create, find, use and remove sandboxes. State
 * lives in the state dir (one JSON record per sandbox); any number of
 * processes (CLI invocations, the daemon) can share it.
 */
export class Sandboxes {
  readonly store: Store;
  private readonly sandboxesDir: string;
  private readonly namesDir: string;
  private readonly backends: Map<string, SandboxBackend>;

  private constructor(
    readonly stateDir: string,
    readonly uidBase: number,
    readonly cgroupParent: string,
    readonly container: ContainerBackend,
    store: Store,
  ) {
    this.store = store;
    this.sandboxesDir = path.join(stateDir, "sandboxes");
    this.namesDir = path.join(stateDir, "names");
    this.backends = new Map([["container", container]]);
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
    for (const d of ["sandboxes", "names", "crun"]) await fsp.mkdir(path.join(stateDir, d), { recursive: true, mode: 0o711 });
    const agentDir = await store.addBinary(nativeBinary("corral-agent"), "corral-agent").catch((e: NodeJS.ErrnoException) => {
      throw new HostError(`the agent binary is missing (${e.message}); run npm run build`);
    });
    const container = new ContainerBackend({
      crunRoot: path.join(stateDir, "crun"),
      agentDir,
      launcher: nativeBinary("corral-launch"),
      uidBase,
      cgroupParent,
    });
    const s = new Sandboxes(stateDir, uidBase, cgroupParent, container, store);
    await s.reconcile();
    return s;
  }

  private dirOf(id: string): string {
    return path.join(this.sandboxesDir, id);
  }

  private backendFor(spec: ResolvedSpec): SandboxBackend {
    const b = this.backends.get(spec.backend);
    if (!b) throw new HostError(`the ${spec.backend} backend is not available yet`);
    return b;
  }

  private handle(r: SandboxRecord): SandboxHandle {
    return this.backendFor(r.spec).attach(r.id, this.dirOf(r.id));
  }

  /** Builds or looks up the template, then starts a sandbox from it. */
  async create(input: unknown, opts: { onProgress?: ProgressFn } = {}): Promise<SandboxInfo> {
    const spec = parseSpec(input);
    const backend = this.backendFor(spec);
    const template = await this.store.ensureTemplate(spec.template, opts.onProgress);
    const id = randomBytes(8).toString("hex");
    const name = spec.name ?? `sb-${id.slice(0, 8)}`;
    const dir = this.dirOf(id);
    await fsp.mkdir(dir, { mode: 0o711 });
    const now = new Date();
    const record: SandboxRecord = {
      id,
      name,
      spec,
      createdAt: now.toISOString(),
      expiresAt: spec.lifetime.timeoutSeconds ? new Date(now.getTime() + spec.lifetime.timeoutSeconds * 1000).toISOString() : null,
      state: "creating",
      creatorPid: process.pid,
    };
    let named = false;
    try {
      await writeJsonAtomic(path.join(dir, "sandbox.json"), record);
      await this.claimName(name, id);
      named = true;
      await backend.create({
        id,
        spec,
        hostname: name,
        layers: template.layers.map((d) => this.store.layerDir(d)),
        dir,
      });
      const running: SandboxRecord = { ...record, state: "running" };
      await writeJsonAtomic(path.join(dir, "sandbox.json"), running);
      return { ...running, status: "running" };
    } catch (e) {
      await backend.attach(id, dir).destroy().catch(() => {});
      await fsp.rm(dir, { recursive: true, force: true });
      if (named) await this.releaseName(name, id);
      throw e;
    }
  }

  private async claimName(name: string, id: string): Promise<void> {
    const link = path.join(this.namesDir, name);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fsp.symlink(id, link);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const owner = await fsp.readlink(link).catch(() => "");
        if (owner && (await this.readRecord(owner))) throw new ConflictError(`a sandbox named "${name}" already exists (${owner})`);
        await fsp.rm(link, { force: true }); // left by a sandbox that is gone
      }
    }
    throw new ConflictError(`could not claim the name "${name}"`);
  }

  private async releaseName(name: string, id: string): Promise<void> {
    const link = path.join(this.namesDir, name);
    if ((await fsp.readlink(link).catch(() => "")) === id) await fsp.rm(link, { force: true });
  }

  private async readRecord(id: string): Promise<SandboxRecord | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    try {
      return JSON.parse(await fsp.readFile(path.join(this.dirOf(id), "sandbox.json"), "utf8")) as SandboxRecord;
    } catch {
      return undefined;
    }
  }

  /** Finds a sandbox by name or id. */
  async record(ref: string): Promise<SandboxRecord> {
    if (typeof ref !== "string" || ref.length === 0 || ref.length > 64 || ref.includes("/") || ref.startsWith(".")) {
      throw new InvalidArgumentError(`not a sandbox name or id: ${JSON.stringify(ref)}`);
    }
    const byId = await this.readRecord(ref);
    if (byId && byId.state === "running") return byId;
    const id = await fsp.readlink(path.join(this.namesDir, ref)).catch(() => undefined);
    const byName = id ? await this.readRecord(id) : undefined;
    if (byName && byName.state === "running") return byName;
    throw new NotFoundError("sandbox", ref);
  }

  async get(ref: string): Promise<SandboxInfo> {
    const r = await this.record(ref);
    return { ...r, status: await this.handle(r).status() };
  }

  async list(): Promise<SandboxInfo[]> {
    const out: SandboxInfo[] = [];
    for (const id of await fsp.readdir(this.sandboxesDir)) {
      const r = await this.readRecord(id);
      if (r && r.state === "running") out.push({ ...r, status: await this.handle(r).status() });
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** A fresh connection to the sandbox's agent; the caller closes it. */
  async agent(ref: string): Promise<AgentClient> {
    return this.handle(await this.record(ref)).agent();
  }

  async stats(ref: string) {
    return this.handle(await this.record(ref)).stats();
  }

  /**
   * Runs a command in the sandbox. The sandbox's env and workdir apply
   * unless the request overrides them.
   */
  async exec(ref: string, req: ExecRequest, cb: ExecCallbacks = {}): Promise<ExecOutcome> {
    const r = await this.record(ref);
    const h = this.handle(r);
    const client = await h.agent();
    try {
      const before = await h.oomKills();
      const result = await client.exec(
        { ...req, env: { ...r.spec.env, ...req.env }, cwd: req.cwd ?? r.spec.workdir },
        cb,
      ).result;
      const oomKilled = result.signal === 9 && (await h.oomKills()) > before;
      return { ...result, oomKilled };
    } finally {
      client.close();
    }
  }

  /** Stops and removes a sandbox and everything it had on the host. */
  async destroy(ref: string): Promise<void> {
    const r = await this.record(ref);
    await this.handle(r).destroy();
    await this.releaseName(r.name, r.id);
  }

  /**
   * Makes the state dir consistent after a crash: removes sandboxes whose
   * creator died mid-create, records without a sandbox, crun containers and
   * cgroups without a record, and expired ephemeral sandboxes.
   */
  async reconcile(now = Date.now()): Promise<{ removed: string[] }> {
    const removed: string[] = [];
    const known = new Set<string>();
    for (const id of await fsp.readdir(this.sandboxesDir)) {
      const r = await this.readRecord(id);
      const creatorAlive = r?.state === "creating" && pidAlive(r.creatorPid);
      const expired = r?.state === "running" && r.expiresAt !== null && Date.parse(r.expiresAt) <= now;
      if (r && (r.state === "running" || creatorAlive) && !expired) {
        known.add(id);
        continue;
      }
      await this.container.attach(id, this.dirOf(id)).destroy();
      if (r) await this.releaseName(r.name, id);
      removed.push(id);
    }
    for (const id of await fsp.readdir(path.join(this.stateDir, "crun")).catch(() => [])) {
      if (ID_PATTERN.test(id) && !known.has(id) && !(await fsp.stat(this.dirOf(id)).catch(() => undefined))) {
        await this.container.attach(id, this.dirOf(id)).destroy();
        removed.push(id);
      }
    }
    for (const id of await this.container.cgroupChildren()) {
      if (ID_PATTERN.test(id) && !known.has(id) && !(await fsp.stat(this.dirOf(id)).catch(() => undefined))) {
        await this.container.cgroupFor(id).remove();
      }
    }
    for (const link of await fsp.readdir(this.namesDir)) {
      const id = await fsp.readlink(path.join(this.namesDir, link)).catch(() => "");
      if (!(await this.readRecord(id))) await fsp.rm(path.join(this.namesDir, link), { force: true });
    }
    return { removed };
  }
}
