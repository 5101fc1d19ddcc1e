import type { components } from "./api-types.js";
import type { RequestControl } from "./channel.js";
import type { CommandResult, Commands } from "./commands.js";
import { errorFor, NotFoundError, SandboxError } from "./errors.js";
import type { Http } from "./http.js";

type ExecRequest = components["schemas"]["ExecRequest"];

export interface PtySize {
  cols: number;
  rows: number;
}

export interface PtyCreateOpts extends PtySize {
  /** The terminal's output (what the program writes to it), as it comes; a returned promise is awaited before reading on. */
  onData: (data: Uint8Array) => unknown;
  /** Working directory. Default: the sandbox's workdir. */
  cwd?: string | undefined;
  /** Environment variables, over the sandbox's; TERM defaults to xterm-256color. */
  envs?: Record<string, string> | undefined;
  /** The program: a shell command line or an argv. Default: a login shell (bash where there is one, else sh). */
  cmd?: string | readonly string[] | undefined;
  /** Kill it after this long (ms). Default: none (it runs until it exits or is killed). */
  timeoutMs?: number | undefined;
  /** Kill it (SIGKILL) when this handle's output stream ends before it does (disconnect, a lost connection). Default false: it runs on, and `connect` joins it again. */
  killOnDisconnect?: boolean | undefined;
}

/** An interactive shell where there is one: bash (login, interactive), else sh. */
const DEFAULT_SHELL = ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -i -l; else exec /bin/sh -i -l; fi"];

/**
 * Terminals in one sandbox (E2B's `sandbox.pty`): a program on a
 * pseudo-terminal of the size asked, its screen streamed to `onData`
 * (over /v1/connect as binary frames, without base64), keystrokes with
 * `sendInput` (Ctrl-C is "\x03"), `resize`, `kill`, `wait`. A terminal is
 * a background command: it outlives the handle, and `connect` joins it
 * again, its last 64 KiB of output first.
 */
export class Pty {
  constructor(
    private readonly http: Http,
    private readonly sandboxId: string,
    private readonly commands: Commands,
  ) {}

  async create(opts: PtyCreateOpts): Promise<PtyHandle> {
    const cmd = opts.cmd ?? DEFAULT_SHELL;
    const req: ExecRequest = typeof cmd === "string" ? { cmd } : { argv: [...cmd] };
    req.pty = { rows: opts.rows, cols: opts.cols };
    req.background = true;
    req.stdin = true;
    req.env = { TERM: "xterm-256color", ...opts.envs };
    if (opts.cwd !== undefined) req.cwd = opts.cwd;
    if (opts.timeoutMs !== undefined) req.timeoutMs = Math.max(1, Math.ceil(opts.timeoutMs));
    const ev = await this.http.json("post", "/v1/sandboxes/{id}/exec", { path: { id: this.sandboxId }, json: req });
    if (ev?.type === "error") throw errorFor({ status: 0, code: ev.error?.code ?? "exec_failed", message: ev.error?.message ?? "the terminal could not start" });
    if (ev?.type !== "start" || typeof ev.pid !== "number") throw new SandboxError("bad_response", `exec: expected a start event with a pid, got ${JSON.stringify(ev)?.slice(0, 200)}`);
    return this.connect(ev.pid, { onData: opts.onData, killOnDisconnect: opts.killOnDisconnect });
  }

  /** Joins a running terminal (or any command: its output as bytes): what it printed last first, then as it comes. */
  async connect(pid: number, opts: { onData: (data: Uint8Array) => unknown; killOnDisconnect?: boolean | undefined }): Promise<PtyHandle> {
    const control: RequestControl = {};
    const output = this.http.follow(
      "get",
      "/v1/sandboxes/{id}/processes/{pid}/output",
      { path: { id: this.sandboxId, pid }, query: { raw: true, ...(opts.killOnDisconnect ? { killOnClose: true } : {}) } },
      { onBytes: (b) => opts.onData(b) },
      control,
    );
    output.catch(() => {}); // reported by wait()
    return new PtyHandle(this, pid, output, control);
  }

  /** Writes to a terminal's input (keystrokes: "\x03" is Ctrl-C, "\x04" end of file at a prompt). */
  async sendInput(pid: number, data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    const path = "/v1/sandboxes/{id}/processes/{pid}/stdin" as const;
    const control: RequestControl = {};
    const sent = new Promise<void>((r) => (control.onSent = r));
    const over = this.http.uploading("post", path, { path: { id: this.sandboxId, pid } }, control);
    if (!over) return this.commands.sendStdin(pid, bytes);
    await Promise.race([sent, over]);
    if (!control.upload) return over; // refused before it was sent
    await control.upload.write(bytes);
    await control.upload.end();
    return over;
  }

  /** Sets a terminal's size; the program gets SIGWINCH. */
  async resize(pid: number, size: PtySize): Promise<void> {
    await this.http.json("post", "/v1/sandboxes/{id}/processes/{pid}/resize", { path: { id: this.sandboxId, pid }, json: { rows: size.rows, cols: size.cols } });
  }

  /** Kills a terminal's program (SIGKILL); false if it had ended. */
  kill(pid: number): Promise<boolean> {
    return this.commands.kill(pid);
  }

  /** @internal */
  waitFor(pid: number): Promise<CommandResult | null> {
    return this.commands.waitFor(pid);
  }
}

/** A terminal: its pid, its input, size and end. */
export class PtyHandle {
  /** Keystrokes not yet sent, sent together once the write before them is answered. */
  private queued: Uint8Array[] = [];
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly pty: Pty,
    /** The program's process id in the sandbox. */
    readonly pid: number,
    private readonly output: Promise<void>,
    private readonly control: RequestControl,
  ) {}

  /**
   * Sends keystrokes, in order: writes made while one is on its way go
   * together in the next request. Resolves once these bytes are written.
   */
  sendInput(data: Uint8Array | string): Promise<void> {
    this.queued.push(typeof data === "string" ? Buffer.from(data) : data);
    return this.pump();
  }

  private pump(): Promise<void> {
    const prev = this.inFlight ?? Promise.resolve();
    const next: Promise<void> = prev.catch(() => {}).then(async () => {
      if (this.queued.length === 0) return;
      const batch = Buffer.concat(this.queued.splice(0));
      await this.pty.sendInput(this.pid, batch);
    });
    this.inFlight = next;
    return next;
  }

  resize(size: PtySize): Promise<void> {
    return this.pty.resize(this.pid, size);
  }

  /** Kills the program (SIGKILL); false if it had ended. */
  kill(): Promise<boolean> {
    return this.pty.kill(this.pid);
  }

  /**
   * Resolves when the program has ended (its output all delivered), with
   * its exit code (stdout and stderr are empty: the output went to onData).
   */
  async wait(): Promise<CommandResult> {
    await this.output;
    const r = await this.pty.waitFor(this.pid);
    if (!r) throw new NotFoundError("process_not_found", `process ${this.pid} has ended and its exit is not known`, 404);
    return r;
  }

  /** Stops this handle's output (the program runs on, unless killOnDisconnect). */
  async disconnect(): Promise<void> {
    this.control.cancel?.(new SandboxError("disconnected", `terminal ${this.pid}: disconnected`));
    await this.output.catch(() => {});
  }
}
