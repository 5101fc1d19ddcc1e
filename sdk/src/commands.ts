import type { components } from "./api-types.js";
import { errorFor, NotFoundError, SandboxError } from "./errors.js";
import type { Http } from "./http.js";
import { OutputDecoder } from "./output.js";

type ExecRequest = components["schemas"]["ExecRequest"];
type ExecEvent = components["schemas"]["ExecEvent"];

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
 * A command running in the background. Its output is not streamed back in
 * this version (the API has no endpoint for it): redirect it to a file.
 */
export class CommandHandle {
  constructor(
    private readonly commands: Commands,
    /** The id for the stdin and signal endpoints (the process id in the sandbox). */
    readonly pid: number,
  ) {}

  /**
   * Resolves when the command has ended, with its exit code or signal (its
   * output is not streamed back: stdout and stderr are empty). If the daemon
   * restarted since the command started it no longer knows the exit: then
   * this polls the sandbox every `pollMs` (default 200) until the process is
   * gone and exitCode and signal are null.
   */
  async wait(opts: { pollMs?: number } = {}): Promise<CommandResult> {
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
}
