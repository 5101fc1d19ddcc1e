import { InvalidArgumentError } from "../core/errors.js";
import type { Sandboxes } from "../runtime/sandboxes.js";
import type { CliTarget } from "./target.js";

/** A daemon and the key to use there; requests go over HTTP (see backend-remote.ts for why). */
export interface Connection {
  readonly apiUrl: string;
  readonly apiKey: string;
  readonly transport: "http";
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
 * else the state dir. Each side is imported only when asked for: the
 * daemon's side loads the SDK (no runtime, zod, SQLite or backends), the
 * state dir's the runtime (no SDK, no ws).
 */
export class Context {
  private chosen: Promise<CliTarget> | undefined;
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
   * daemon is a one-line error, before any request.
   */
  connection(): Connection | undefined {
    const apiUrl = this.apiUrl;
    if (!apiUrl) return undefined;
    const apiKey = this.globals.apiKey ?? this.env["CORRAL_API_KEY"];
    if (!apiKey) throw new InvalidArgumentError(`no API key for the daemon at ${apiUrl}: set CORRAL_API_KEY or pass --api-key`);
    return { apiUrl, apiKey, transport: "http" };
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
    const conn = this.connection();
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
