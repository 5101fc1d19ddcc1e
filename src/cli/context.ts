import { ConflictError, InvalidArgumentError } from "../core/errors.js";
import type { Sandboxes } from "../runtime/sandboxes.js";
import type { CliTarget } from "./target.js";

/** A daemon and the key to use there; requests go over HTTP (see backend-remote.ts for why). */
export interface Connection {
  readonly apiUrl: string;
  readonly apiKey: string;
  readonly transport: "http";
  /** Set when this is the daemon serving the state dir the command was given (its operator credential). */
  readonly served?: ServedStateDir;
}

/** A state dir and the daemon that holds its lock. */
export interface ServedStateDir {
  readonly stateDir: string;
  readonly pid: number;
  readonly url: string;
}

/**
 * The one-line refusal of a command that acts on the state dir directly
 * and has no form through its daemon (racing the daemon is what issue 18
 * part 3 rules out).
 */
export function servedRefusal(s: ServedStateDir, what: string): ConflictError {
  return new ConflictError(`${what} acts on the state dir directly, and ${s.stateDir} is served by a corral daemon (pid ${s.pid}, ${s.url}): stop it first, or do this through the daemon`);
}

/** The global options, as parsed. */
export interface Globals {
  readonly stateDir?: string;
  readonly apiUrl?: string;
  readonly apiKey?: string;
}

/**
 * Where a command acts, chosen once per run: a daemon when a URL is
 * configured (--api-url, else $CORRAL_API_URL unless --state-dir is given),
 * else the daemon serving the state dir when one does (with the operator
 * credential it wrote there: no key to hand over, and nothing of the
 * state dir opened beside it), else the state dir itself. Each side is imported only when asked for: the
 * daemon's side loads the SDK (no runtime, zod, SQLite or backends), the
 * state dir's the runtime (no SDK, no ws).
 */
export class Context {
  private chosen: Promise<CliTarget> | undefined;
  private connected: Promise<Connection | undefined> | undefined;
  private opened: Promise<Sandboxes> | undefined;
  private readonly closers: (() => void)[] = [];

  constructor(
    private readonly globals: Globals,
    private readonly env: Readonly<Record<string, string | undefined>> = process.env,
  ) {
    live.add(this);
  }

  /** The daemon's URL when commands that can go through one do; undefined: the state dir. */
  get apiUrl(): string | undefined {
    const g = this.globals;
    if (g.apiUrl && g.stateDir) throw new InvalidArgumentError("give --api-url or --state-dir, not both");
    return g.apiUrl ?? (g.stateDir ? undefined : this.env["CORRAL_API_URL"] || undefined);
  }

  /** The sandbox commands' target: the daemon (through the SDK) or the state dir (through the runtime). */
  target(): Promise<CliTarget> {
    return (this.chosen ??= this.choose());
  }

  /**
   * The daemon to act through, with its key, or undefined: act on the state
   * dir. Over HTTP only (see backend-remote.ts). No key for a configured
   * daemon is a one-line error, before any request. Without a configured
   * daemon, the one serving the state dir (state-dir-lock.ts servingDaemon),
   * with its operator credential.
   */
  connection(): Promise<Connection | undefined> {
    return (this.connected ??= this.connect());
  }

  private async connect(): Promise<Connection | undefined> {
    const apiUrl = this.apiUrl;
    if (apiUrl) {
      const apiKey = this.globals.apiKey ?? this.env["CORRAL_API_KEY"];
      if (!apiKey) throw new InvalidArgumentError(`no API key for the daemon at ${apiUrl}: set CORRAL_API_KEY or pass --api-key`);
      return { apiUrl, apiKey, transport: "http" };
    }
    const { DEFAULT_STATE_DIR, servingDaemon } = await import("../runtime/state-dir-lock.js");
    const stateDir = this.globals.stateDir ?? this.env["CORRAL_STATE_DIR"] ?? DEFAULT_STATE_DIR;
    const d = await servingDaemon(stateDir);
    if (!d) return undefined;
    // `corral daemon --socket PATH` records the path itself.
    const url = d.url.startsWith("/") ? `unix:${d.url}` : d.url;
    return { apiUrl: url, apiKey: d.key, transport: "http", served: { stateDir, pid: d.pid, url: d.url } };
  }

  /** The state dir itself: the commands' local side, and `daemon`. */
  state(): Promise<Sandboxes> {
    return (this.opened ??= this.openState());
  }

  get stateDir(): string | undefined {
    return this.globals.stateDir;
  }

  /** Called once the command is over and its exit status set (closeContexts). */
  close(): void {
    live.delete(this);
    for (const c of this.closers.splice(0)) c();
  }

  private async choose(): Promise<CliTarget> {
    const conn = await this.connection();
    if (!conn) {
      const { LocalTarget } = await import("./backend-local.js");
      return new LocalTarget(() => this.state());
    }
    const { RemoteTarget } = await import("./backend-remote.js");
    const t = new RemoteTarget(conn);
    this.closers.push(() => t.close());
    return t;
  }

  private async openState(): Promise<Sandboxes> {
    const { Sandboxes } = await import("../runtime/sandboxes.js");
    const dir = this.globals.stateDir;
    // Not closed at the end: the process exits, as it always did.
    return Sandboxes.open(dir ? { stateDir: dir } : {});
  }
}

const live = new Set<Context>();

/**
 * Closes the run's contexts; main.ts calls it once the exit status is set,
 * since closing may exit the process (a remote exec abandoned by Ctrl-C).
 */
export function closeContexts(): void {
  for (const c of [...live]) c.close();
}
