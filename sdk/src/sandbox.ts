import type { components } from "./api-types.js";
import { Commands } from "./commands.js";
import { resolveConfig, type ConnectionOpts } from "./config.js";
import { DEFAULT_TEMPLATE } from "./defaults.js";
import { InvalidArgumentError, NotFoundError } from "./errors.js";
import { Files } from "./files.js";
import { Http } from "./http.js";
import { Pty } from "./pty.js";
import { Snapshots, type SnapshotInfo } from "./snapshots.js";
import type { TemplateInfo } from "./templates.js";

export type { SnapshotInfo };

type ApiSandbox = components["schemas"]["Sandbox"];
type SandboxSpec = components["schemas"]["SandboxSpec"];
export type ResolvedSpec = components["schemas"]["ResolvedSpec"];
export type SandboxStats = components["schemas"]["Usage"];
export type Resources = NonNullable<SandboxSpec["resources"]>;

export interface SandboxOpts extends ConnectionOpts {
  /** Template to start from. Default DEFAULT_TEMPLATE ("busybox"). */
  template?: string | undefined;
  /**
   * Remove the sandbox this long after creation (ms, rounded up to whole
   * seconds). Default: the server's timeout for ephemeral sandboxes.
   */
  timeoutMs?: number | undefined;
  /** Environment variables of every command. */
  envs?: Record<string, string> | undefined;
  /** Labels to find the sandbox by (`Sandbox.list({ metadata })`). */
  metadata?: Record<string, string> | undefined;
  /** A name unique among the tenant's sandboxes, usable in place of the id. */
  name?: string | undefined;
  /** CPU, memory ("512M", bytes), pids, disk. */
  resources?: Resources | undefined;
  /** Keep the sandbox until it is killed (no timeout). */
  persistent?: boolean | undefined;
  /** Default working directory of commands. */
  workdir?: string | undefined;
  backend?: SandboxSpec["backend"] | undefined;
}


export interface SandboxInfo {
  sandboxId: string;
  name: string;
  template: string;
  backend: ApiSandbox["backend"];
  status: ApiSandbox["status"];
  /** ISO 8601. */
  createdAt: string;
  /** When the sandbox will be removed (ISO 8601); null: never. */
  expiresAt: string | null;
  /** Its labels. */
  metadata: Record<string, string>;
  /** The full spec, with the server's defaults filled in. */
  spec: ResolvedSpec;
  /** A microVM's MAC, vsock CID and tap name, derived from its name; absent for containers. */
  identity?: ApiSandbox["identity"];
  /** Made and kept by the operator's declared state (the NixOS module), not through the API. */
  declared?: boolean;
}

export interface ListOpts extends ConnectionOpts {
  /** Only sandboxes having all these labels. */
  metadata?: Record<string, string> | undefined;
}

/** A sandbox on a corral daemon: run commands in it, move files in and out. */
export class Sandbox {
  readonly commands: Commands;
  readonly files: Files;
  readonly pty: Pty;

  private constructor(
    private readonly http: Http,
    readonly sandboxId: string,
  ) {
    this.commands = new Commands(http, sandboxId);
    this.files = new Files(http, sandboxId);
    this.pty = new Pty(http, sandboxId, this.commands);
  }

  /** Creates a sandbox and resolves once it is running. */
  static async create(opts: SandboxOpts = {}): Promise<Sandbox> {
    const http = new Http(resolveConfig(opts));
    const sb = await http.json("post", "/v1/sandboxes", { json: specOf(opts) });
    return new Sandbox(http, sb.id);
  }

  /** A sandbox that already exists, by id or name (NotFoundError if the tenant has none such). */
  static async connect(sandboxId: string, opts: ConnectionOpts = {}): Promise<Sandbox> {
    const http = new Http(resolveConfig(opts));
    const sb = await http.json("get", "/v1/sandboxes/{id}", { path: { id: sandboxId } });
    return new Sandbox(http, sb.id);
  }

  /** The tenant's sandboxes, optionally only those with all the given labels. */
  static async list(opts: ListOpts = {}): Promise<SandboxInfo[]> {
    const http = new Http(resolveConfig(opts));
    const label = Object.entries(opts.metadata ?? {}).map(([k, v]) => `${k}=${v}`);
    const r = await http.json("get", "/v1/sandboxes", label.length ? { query: { label } } : {});
    return r.sandboxes.map(toInfo);
  }

  /** Information about a sandbox by id or name. */
  static async getInfo(sandboxId: string, opts: ConnectionOpts = {}): Promise<SandboxInfo> {
    const http = new Http(resolveConfig(opts));
    return toInfo(await http.json("get", "/v1/sandboxes/{id}", { path: { id: sandboxId } }));
  }

  /** Removes a sandbox; false if there was none. */
  static async kill(sandboxId: string, opts: ConnectionOpts = {}): Promise<boolean> {
    return killWith(new Http(resolveConfig(opts)), sandboxId);
  }

  /** Sets a sandbox's timeout, from now (ms, rounded up to seconds); null: none. */
  static async setTimeout(sandboxId: string, timeoutMs: number | null, opts: ConnectionOpts = {}): Promise<SandboxInfo> {
    return setTimeoutWith(new Http(resolveConfig(opts)), sandboxId, timeoutMs);
  }

  async info(): Promise<SandboxInfo> {
    return toInfo(await this.http.json("get", "/v1/sandboxes/{id}", { path: { id: this.sandboxId } }));
  }

  /** Removes the sandbox `timeoutMs` from now (rounded up to seconds); null: never. */
  async setTimeout(timeoutMs: number | null): Promise<SandboxInfo> {
    return setTimeoutWith(this.http, this.sandboxId, timeoutMs);
  }

  /** Makes the sandbox persistent (no timeout), keeping everything it has. */
  async promote(): Promise<SandboxInfo> {
    return toInfo(await this.http.json("post", "/v1/sandboxes/{id}/promote", { path: { id: this.sandboxId } }));
  }

  /**
   * Where the daemon serves port `port` of the sandbox:
   * `http://PORT-ID.localhost:DAEMONPORT/`, and the sandbox's access token
   * for it (the tenant's key works too; `tokenUrl` carries the token, for
   * a browser). Any network mode will do.
   */
  async getHost(port: number): Promise<{ port: number; url: string; public: boolean; token: string; tokenUrl?: string }> {
    return this.http.json("get", "/v1/sandboxes/{id}/ports/{port}", { path: { id: this.sandboxId, port } });
  }

  /** Changes its network (egress policy, named networks, ports) at once; its mode stays. */
  async setNetwork(network: NonNullable<components["schemas"]["SandboxSpec"]["network"]>): Promise<SandboxInfo> {
    return toInfo(await this.http.json("patch", "/v1/sandboxes/{id}", { path: { id: this.sandboxId }, json: { network } }));
  }

  /** The last 64 KiB of its console (a VM's serial console) or runtime log (a container). */
  async logs(): Promise<string> {
    return this.http.text("get", "/v1/sandboxes/{id}/logs", { path: { id: this.sandboxId } });
  }

  /** What the sandbox uses now: CPU time, memory, processes, OOM kills. */
  async stats(): Promise<SandboxStats> {
    return this.http.json("get", "/v1/sandboxes/{id}/stats", { path: { id: this.sandboxId } });
  }

  /**
   * Stops a persistent sandbox: its processes end, its disk stays. The
   * server refuses (ConflictError) a sandbox whose files are in memory.
   */
  async stop(): Promise<SandboxInfo> {
    return toInfo(await this.http.json("post", "/v1/sandboxes/{id}/stop", { path: { id: this.sandboxId } }));
  }

  /** Runs a stopped sandbox again, with the disk it had. */
  async start(): Promise<SandboxInfo> {
    return toInfo(await this.http.json("post", "/v1/sandboxes/{id}/start", { path: { id: this.sandboxId } }));
  }

  /**
   * Saves this microVM sandbox (memory, devices and, when persistent, its
   * disk, of one instant) as snapshot `name`; it runs on. ConflictError for
   * a container sandbox or a taken name.
   */
  async snapshot(name: string): Promise<SnapshotInfo> {
    return this.http.json("post", "/v1/sandboxes/{id}/snapshot", { path: { id: this.sandboxId }, json: { name } });
  }

  /** The same as `snapshot(name)`. */
  async createSnapshot(name: string): Promise<SnapshotInfo> {
    return this.snapshot(name);
  }

  /**
   * Makes template `template` of this persistent sandbox: its template's
   * layers plus what it has written (a running sandbox is stopped for the
   * copy and started again). Takes an admin tenant's key (templates are
   * shared); ConflictError for an ephemeral sandbox or a name taken.
   */
  async commit(template: string): Promise<TemplateInfo> {
    return this.http.json("post", "/v1/sandboxes/{id}/commit", { path: { id: this.sandboxId }, json: { template } });
  }

  /** A new sandbox that starts where snapshot `name` was, with its own identity. */
  static async restore(snapshot: string, opts: ConnectionOpts & { name?: string } = {}): Promise<Sandbox> {
    const http = new Http(resolveConfig(opts));
    const sb = await http.json("post", "/v1/snapshots/{name}/restore", { path: { name: snapshot }, json: opts.name ? { name: opts.name } : {} });
    return new Sandbox(http, sb.id);
  }

  /** The same as `Snapshots.list()`. */
  static async listSnapshots(opts: ConnectionOpts = {}): Promise<SnapshotInfo[]> {
    return Snapshots.list(opts);
  }

  /** The same as `Snapshots.remove(name)`. */
  static async deleteSnapshot(name: string, opts: ConnectionOpts = {}): Promise<void> {
    return Snapshots.remove(name, opts);
  }

  /** Removes the sandbox and everything in it; false if it was already gone. */
  async kill(): Promise<boolean> {
    return killWith(this.http, this.sandboxId);
  }
}

function specOf(o: SandboxOpts): SandboxSpec {
  const spec: SandboxSpec = { template: o.template ?? DEFAULT_TEMPLATE };
  if (o.name !== undefined) spec.name = o.name;
  if (o.backend !== undefined) spec.backend = o.backend;
  if (o.resources !== undefined) spec.resources = o.resources;
  if (o.envs !== undefined) spec.env = o.envs;
  if (o.workdir !== undefined) spec.workdir = o.workdir;
  if (o.metadata !== undefined) spec.labels = o.metadata;
  if (o.persistent !== undefined || o.timeoutMs !== undefined) {
    spec.lifetime = {};
    if (o.persistent !== undefined) spec.lifetime.mode = o.persistent ? "persistent" : "ephemeral";
    if (o.timeoutMs !== undefined) spec.lifetime.timeoutSeconds = toSeconds(o.timeoutMs);
  }
  return spec;
}

function toSeconds(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError("invalid_argument", `timeoutMs must be a positive number, got ${ms}`, 0);
  return Math.ceil(ms / 1000);
}

function toInfo(s: ApiSandbox): SandboxInfo {
  return {
    sandboxId: s.id,
    name: s.name,
    template: s.template,
    backend: s.backend,
    status: s.status,
    createdAt: s.createdAt,
    expiresAt: s.expiresAt,
    metadata: s.spec.labels,
    spec: s.spec,
    ...(s.identity ? { identity: s.identity } : {}),
    ...(s.declared ? { declared: true } : {}),
  };
}

async function killWith(http: Http, id: string): Promise<boolean> {
  try {
    await http.json("delete", "/v1/sandboxes/{id}", { path: { id } });
    return true;
  } catch (e) {
    if (e instanceof NotFoundError) return false;
    throw e;
  }
}

async function setTimeoutWith(http: Http, id: string, timeoutMs: number | null): Promise<SandboxInfo> {
  const timeoutSeconds = timeoutMs === null ? null : toSeconds(timeoutMs);
  return toInfo(await http.json("post", "/v1/sandboxes/{id}/timeout", { path: { id }, json: { timeoutSeconds } }));
}
