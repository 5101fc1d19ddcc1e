import type { components } from "./api-types.js";
import type { RequestControl } from "./channel.js";
import { errorFor, NotFoundError, SandboxError } from "./errors.js";
import type { Http } from "./http.js";
import { OutputDecoder } from "./output.js";

type ExecRequest = components["schemas"]["ExecRequest"];
type ExecEvent = components["schemas"]["ExecEvent"];
/** A command the sandbox runs (commands.list). */
export type ProcessInfo = components["schemas"]["ProcessInfo"];

export interface ConnectOpts {
  /** Each piece of stdout (UTF-8 text): first what the command printed before (its last 64 KiB, for a background one), then as it comes. */
  onStdout?: ((data: string) => unknown) | undefined;
  onStderr?: ((data: string) => unknown) | undefined;
}

export interface CommandOpts {
  /** Working directory inside the sandbox (absolute). Default: the sandbox's workdir. */
  cwd?: string | undefined;
  /** Environment variables, over the sandbox's. */
  envs?: Record<string, string> | undefined;
  /** Kill the command after this long (ms); the result then has `timedOut: true`. */
  timeoutMs?: number | undefined;
  /** Bytes written to the command's stdin, which is then closed. Default: no stdin (/dev/null). */
  stdin?: string | Uint8Array | undefined;
  /** Overrides the connection's requestTimeoutMs (until the command has started). */
  requestTimeoutMs?: number | undefined;
}

export interface RunOpts extends CommandOpts {
  /** Called with each piece of stdout as it arrives (UTF-8 text); a returned promise is awaited before reading on. */
  onStdout?: ((data: string) => unknown) | undefined;
  /** Called with each piece of stderr as it arrives (UTF-8 text). */
  onStderr?: ((data: string) => unknown) | undefined;
  background?: false;
}

export interface BackgroundOpts extends Omit<CommandOpts, "stdin"> {
  /** Return as soon as the command has started: a CommandHandle. */
  background: true;
  /**
   * Bytes written to stdin, which is then closed; or true (the default in
   * the background) to keep stdin open for `sendStdin`/`closeStdin`;
   * false for none.
   */
  stdin?: string | Uint8Array | boolean | undefined;
}

export interface CommandResult {
  /** The exit status; null when a signal ended the command. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** The signal that ended the command, or null. */
  signal: number | null;
  /** The command's `timeoutMs` passed and it was killed. */
  timedOut: boolean;
  /** The kernel's OOM killer ended it (the sandbox's memory limit). */
  oomKilled: boolean;
}

/** SIGKILL */
const SIGKILL = 9;

/**
 * Commands in one sandbox. Unlike E2B, a non-zero exit is not an error:
 * `run` resolves with the exit code (E2B throws CommandExitError). It
 * rejects only when the command could not be run at all.
 */
export class Commands {
  constructor(
    private readonly http: Http,
    private readonly sandboxId: string,
  ) {}

  /**
   * Runs `cmd` (a string: with `/bin/sh -c`; an array: the program and its
   * arguments) and resolves when it ends, with its output. `onStdout` and
   * `onStderr` get output as it is produced, before the command ends.
   *
   * With `background: true` it resolves as soon as the command has started,
   * with a CommandHandle. In this version the output of a background
   * command is not streamed back (the server answers with the `start`
   * event alone): redirect it to a file and read that.
   */
  run(cmd: string | readonly string[], opts: BackgroundOpts): Promise<CommandHandle>;
  run(cmd: string | readonly string[], opts?: RunOpts): Promise<CommandResult>;
  async run(cmd: string | readonly string[], opts: RunOpts | BackgroundOpts = {}): Promise<CommandResult | CommandHandle> {
    if (opts.background) return this.start(cmd, opts);
    return this.runToEnd(cmd, opts);
  }

  /**
   * Joins a running command by pid (started in the background by anyone,
   * this process or another, before a daemon restart too): `onStdout` and
   * `onStderr` get what it printed before (a background command's last
   * 64 KiB) and then its output as it comes, every byte once, in order.
   * The handle's `wait` resolves with its exit and all the output seen;
   * `disconnect` leaves it running. NotFoundError when no such command runs.
   */
  async connect(pid: number, opts: ConnectOpts = {}): Promise<CommandHandle> {
    const collect = collector(opts);
    const control: RequestControl = {};
    let started!: () => void;
    const start = new Promise<void>((r) => (started = r));
    const done = this.http.follow(
      "get",
      "/v1/sandboxes/{id}/processes/{pid}/output",
      { path: { id: this.sandboxId, pid } },
      {
        onEvent: (e) => {
          if ((e as ExecEvent).type === "start") started();
          return collect.onEvent(e);
        },
      },
      control,
    );
    await Promise.race([start, done]);
    const result = done.then(() => {
      const r = collect.result();
      if (!r) throw new SandboxError("bad_response", "connect: the stream ended before the command's exit event");
      return r;
    });
    result.catch(() => {});
    return new CommandHandle(this, pid, { result, control });
  }

  /** The commands running in the sandbox (background ones and terminals included), by pid. */
  async list(): Promise<ProcessInfo[]> {
    const r = await this.http.json("get", "/v1/sandboxes/{id}/processes", { path: { id: this.sandboxId } });
    return r.processes;
  }

  /** Sends a signal (default SIGKILL) to a command's process group; false if it is gone. */
  async kill(pid: number, signal = SIGKILL): Promise<boolean> {
    try {
      await this.http.json("post", "/v1/sandboxes/{id}/processes/{pid}/signal", { path: { id: this.sandboxId, pid }, json: { signal } });
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /** Appends to the stdin of a command started with its stdin kept open. */
  async sendStdin(pid: number, data: string | Uint8Array): Promise<void> {
    await this.http.json("post", "/v1/sandboxes/{id}/processes/{pid}/stdin", { path: { id: this.sandboxId, pid }, body: data });
  }

  /** Closes a command's stdin (it reads end of file). */
  async closeStdin(pid: number): Promise<void> {
    await this.http.json("post", "/v1/sandboxes/{id}/processes/{pid}/stdin", { path: { id: this.sandboxId, pid }, query: { eof: true } });
  }

  private request(cmd: string | readonly string[], opts: CommandOpts | BackgroundOpts): ExecRequest {
    const req: ExecRequest = typeof cmd === "string" ? { cmd } : { argv: [...cmd] };
    if (opts.cwd !== undefined) req.cwd = opts.cwd;
    if (opts.envs !== undefined) req.env = opts.envs;
    if (opts.timeoutMs !== undefined) req.timeoutMs = Math.max(1, Math.ceil(opts.timeoutMs));
    if (typeof opts.stdin === "boolean") req.stdin = opts.stdin;
    else if (opts.stdin !== undefined) req.stdin = Buffer.from(opts.stdin).toString("base64");
    return req;
  }

  private async runToEnd(cmd: string | readonly string[], opts: RunOpts): Promise<CommandResult> {
    const collect = collector(opts);
    const onEvent = collect.onEvent;
    const body = this.request(cmd, opts);
    if (!(await this.http.execEvents(this.sandboxId, body, onEvent, opts.requestTimeoutMs))) {
      const res = await this.http.stream("post", "/v1/sandboxes/{id}/exec", {
        path: { id: this.sandboxId },
        json: body,
        ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}),
      });
      // Read to the end of the body even after the exit event (the server
      // ends it right there): a body left unread would cost the connection
      // instead of keeping it for the next request.
      await this.http.ndjson(res, onEvent);
    }
    const result = collect.result();
    if (result) return result;
    throw new SandboxError("bad_response", "exec: the stream ended before the command's exit event");
  }

  private async start(cmd: string | readonly string[], opts: BackgroundOpts): Promise<CommandHandle> {
    const req = { ...this.request(cmd, opts), background: true };
    if (req.stdin === undefined) req.stdin = true;
    const ev = await this.http.json("post", "/v1/sandboxes/{id}/exec", {
      path: { id: this.sandboxId },
      json: req,
      ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}),
    });
    if (ev?.type === "error") {
      throw errorFor({ status: 0, code: ev.error?.code ?? "exec_failed", message: ev.error?.message ?? "the command failed" });
    }
    if (ev?.type !== "start" || typeof ev.pid !== "number") {
      throw new SandboxError("bad_response", `exec: expected a start event with a pid, got ${JSON.stringify(ev)?.slice(0, 200)}`);
    }
    return new CommandHandle(this, ev.pid);
  }

  /**
   * @internal A background command's end: long polls the wait endpoint.
   * Resolves null when the daemon does not know the pid (it restarted since).
   */
  async waitFor(pid: number): Promise<CommandResult | null> {
    for (;;) {
      let ev;
      try {
        ev = await this.http.json("post", "/v1/sandboxes/{id}/processes/{pid}/wait", {
          path: { id: this.sandboxId, pid },
          query: { timeoutMs: 25_000 },
          timeoutMs: 35_000,
        });
      } catch (e) {
        if (e instanceof NotFoundError && e.code === "process_not_found") return null;
        throw e;
      }
      if (ev?.type === "exit") {
        return { exitCode: ev.exitCode ?? null, stdout: "", stderr: "", signal: ev.signal ?? null, timedOut: ev.timedOut ?? false, oomKilled: ev.oomKilled ?? false };
      }
      if (ev?.type === "error") {
        throw errorFor({ status: 0, code: ev.error?.code ?? "exec_failed", message: ev.error?.message ?? "the command failed" });
      }
    }
  }

  /** @internal Whether a process still runs in the sandbox. */
  async alive(pid: number): Promise<boolean> {
    const r = await this.runToEnd(["/bin/sh", "-c", `kill -0 ${pid} 2>/dev/null`], {});
    return r.exitCode === 0;
  }
}

/**
 * What an exec's (or a connect's) events add up to: output to the
 * callbacks as UTF-8 text (a character split between chunks waits for its
 * end), and the result at the exit event.
 */
function collector(opts: ConnectOpts): { onEvent: (value: unknown) => unknown; result: () => CommandResult | undefined } {
  const out = new OutputDecoder();
  const err = new OutputDecoder();
  let result: CommandResult | undefined;
  const onEvent = (value: unknown) => {
    if (result) return;
    const ev = value as ExecEvent;
    switch (ev.type) {
      case "stdout": {
        const text = out.push(ev.data ?? "");
        return text ? opts.onStdout?.(text) : undefined;
      }
      case "stderr": {
        const text = err.push(ev.data ?? "");
        return text ? opts.onStderr?.(text) : undefined;
      }
      case "exit": {
        const done = () => {
          result = {
            exitCode: ev.exitCode ?? null,
            stdout: out.text(),
            stderr: err.text(),
            signal: ev.signal ?? null,
            timedOut: ev.timedOut ?? false,
            oomKilled: ev.oomKilled ?? false,
          };
        };
        const outTail = out.end();
        const errTail = err.end();
        if (!outTail && !errTail) return done();
        return (async () => {
          if (outTail) await opts.onStdout?.(outTail);
          if (errTail) await opts.onStderr?.(errTail);
          done();
        })();
      }
      case "error":
        throw errorFor({ status: 0, code: ev.error?.code ?? "exec_failed", message: ev.error?.message ?? "the command failed", issues: ev.error?.issues, over: ev.error?.over });
      default:
        return undefined; // "start", and kinds a newer server may add
    }
  };
  return { onEvent, result: () => result };
}

/**
 * A command running in the background. From `run(..., { background: true
 * })` its output is not streamed (`commands.connect(pid)` joins it, with
 * what it printed so far); from `connect` it is.
 */
export class CommandHandle {
  constructor(
    private readonly commands: Commands,
    /** The id for the stdin and signal endpoints (the process id in the sandbox). */
    readonly pid: number,
    private readonly stream?: { readonly result: Promise<CommandResult>; readonly control: RequestControl },
  ) {}

  /**
   * Resolves when the command has ended, with its exit code or signal, and
   * for a handle from `connect` the output it streamed (otherwise stdout
   * and stderr are empty). Without a stream, if neither the daemon nor the
   * sandbox knows the pid any more, this polls the sandbox every `pollMs`
   * (default 200) until the process is gone and exitCode and signal are null.
   */
  async wait(opts: { pollMs?: number } = {}): Promise<CommandResult> {
    if (this.stream) return this.stream.result;
    const ended = await this.commands.waitFor(this.pid);
    if (ended) return ended;
    const pollMs = opts.pollMs ?? 200;
    while (await this.commands.alive(this.pid)) await new Promise((r) => setTimeout(r, pollMs));
    return { exitCode: null, stdout: "", stderr: "", signal: null, timedOut: false, oomKilled: false };
  }

  /** Sends a signal (default SIGKILL) to the command's process group; false if it had ended. */
  kill(signal = SIGKILL): Promise<boolean> {
    return this.commands.kill(this.pid, signal);
  }

  sendStdin(data: string | Uint8Array): Promise<void> {
    return this.commands.sendStdin(this.pid, data);
  }

  closeStdin(): Promise<void> {
    return this.commands.closeStdin(this.pid);
  }

  /** Stops streaming a connected command's output; it runs on (`wait` then rejects). */
  async disconnect(): Promise<void> {
    this.stream?.control.cancel?.(new SandboxError("disconnected", `command ${this.pid}: disconnected`));
    await this.stream?.result.catch(() => {});
  }
}
