import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { Sandbox, type SandboxInfo, type SandboxOpts } from "../../sdk/src/index.js";
import type { Connection } from "./context.js";
import { stderr, stdout, type Output } from "./stdio.js";
import {
  onInterrupt,
  type CliTarget,
  type ExecEnd,
  type ExecInput,
  type SandboxFiles,
  type SandboxSummary,
  type SpecInput,
  type TerminalInput,
  type TerminalSession,
} from "./target.js";

/**
 * The sandbox commands on a corral daemon, through the SDK. Limits of the
 * API as it is: a command's stdin is sent whole when it starts (`exec -i`
 * reads stdin to its end first), Ctrl-C ends the command by closing the
 * request (the daemon kills it) rather than by forwarding SIGINT, output
 * arrives as UTF-8 text.
 *
 * Everything goes over HTTP (transport "http"), not /v1/connect: one
 * command per process gains nothing from the WebSocket, which costs the ws
 * module's ~55 ms to load and a handshake; and an exec's NDJSON body is
 * paused while stdout is full (the channel has no per-request pause).
 */
export class RemoteTarget implements CliTarget {
  /** A signal ended `exec` while its request is still open: exit on close. */
  private abandoned = false;
  constructor(private readonly conn: Connection) {}

  async create(spec: SpecInput): Promise<{ id: string; name: string }> {
    const opts: SandboxOpts = {
      ...this.conn,
      requestTimeoutMs: 0, // the daemon may build the template first
      template: spec.template,
      backend: spec.backend as SandboxOpts["backend"],
      resources: spec.resources,
      envs: spec.env,
      metadata: spec.labels,
      persistent: spec.lifetime.mode === "persistent",
      name: spec.name,
      workdir: spec.workdir,
    };
    if (spec.lifetime.timeoutSeconds !== undefined) opts.timeoutMs = spec.lifetime.timeoutSeconds * 1000;
    const sb = await Sandbox.create(opts);
    return { id: sb.sandboxId, name: spec.name ?? (await sb.info()).name };
  }

  async exec(ref: string, req: ExecInput): Promise<ExecEnd> {
    const sb = await Sandbox.connect(ref, this.conn);
    const stdin = req.stdin ? await readAll(process.stdin) : undefined;
    const run = sb.commands.run(req.argv, {
      envs: req.env,
      cwd: req.workdir,
      timeoutMs: req.timeoutSeconds === undefined ? undefined : req.timeoutSeconds * 1000,
      stdin,
      onStdout: sink(stdout(), true),
      onStderr: sink(stderr(), false),
    });
    let stop = () => {};
    const interrupted = new Promise<ExecEnd>((resolve) => {
      stop = onInterrupt((signo) => {
        this.abandoned = true;
        resolve({ exitCode: null, signal: signo, timedOut: false, oom: null });
      });
    });
    const ended = run.then(
      async (r): Promise<ExecEnd> => ({
        exitCode: r.exitCode,
        signal: r.signal,
        timedOut: r.timedOut,
        oom: r.oomKilled ? { memoryLimit: (await sb.info()).spec.resources.memory } : null,
      }),
      (e: unknown): ExecEnd => {
        // stdout's reader went away: the request was dropped, and with it the command (the daemon kills it).
        if (e instanceof StdoutClosed) return { exitCode: null, signal: SIGPIPE, timedOut: false, oom: null };
        throw e;
      },
    );
    try {
      return await Promise.race([ended, interrupted]);
    } finally {
      stop();
    }
  }

  /**
   * A terminal over /v1/connect (keystrokes and screen as binary frames:
   * worth the WebSocket's load here), killed by the daemon if this
   * process goes without a word (killOnDisconnect).
   */
  async terminal(ref: string, req: TerminalInput): Promise<TerminalSession> {
    const sb = await Sandbox.connect(ref, { ...this.conn, transport: "auto" });
    const pty = await sb.pty.create({
      rows: req.size.rows,
      cols: req.size.cols,
      cmd: req.argv,
      envs: req.env,
      cwd: req.workdir,
      killOnDisconnect: true,
      onData: (b) => req.onOutput(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
    });
    const done = pty.wait().then(
      async (r): Promise<ExecEnd> => ({
        exitCode: r.exitCode,
        signal: r.signal,
        timedOut: r.timedOut,
        oom: r.oomKilled ? { memoryLimit: (await sb.info()).spec.resources.memory } : null,
      }),
    );
    return {
      write: (data) => pty.sendInput(data),
      resize: (size) => pty.resize(size),
      kill: async () => {
        await pty.kill();
      },
      done,
    };
  }

  async files(ref: string): Promise<SandboxFiles> {
    const sb = await Sandbox.connect(ref, this.conn);
    return {
      stat: (path) => sb.files.stat(path),
      write: async (path, data, mode) => {
        await sb.files.write(path, data, { mode, requestTimeoutMs: 0 });
      },
      read: async (path) => Readable.fromWeb((await sb.files.read(path, { format: "stream" })) as NodeReadableStream<Uint8Array>),
      downloadArchive: async (path) => Readable.fromWeb((await sb.files.downloadArchive(path)) as NodeReadableStream<Uint8Array>),
      uploadArchive: (dir, archive) => sb.files.uploadArchive(dir, archive),
      close() {},
    };
  }

  async list(): Promise<SandboxSummary[]> {
    return (await Sandbox.list(this.conn)).map(apiShape);
  }

  async inspect(ref: string): Promise<object> {
    const sb = await Sandbox.connect(ref, this.conn);
    const info = await sb.info();
    return { ...apiShape(info), usage: info.status === "running" ? await sb.stats() : null };
  }

  async logs(ref: string): Promise<string> {
    return (await Sandbox.connect(ref, this.conn)).logs();
  }

  async promote(ref: string): Promise<void> {
    await (await Sandbox.connect(ref, this.conn)).promote();
  }

  async setNetwork(ref: string, network: NonNullable<SpecInput["network"]>): Promise<void> {
    await (await Sandbox.connect(ref, this.conn)).setNetwork(network as Parameters<Sandbox["setNetwork"]>[0]);
  }

  async port(ref: string, port: number): Promise<{ url: string; tokenUrl?: string; public: boolean }> {
    return (await Sandbox.connect(ref, this.conn)).getHost(port);
  }

  async setRunning(ref: string, running: boolean): Promise<void> {
    const sb = await Sandbox.connect(ref, this.conn);
    await (running ? sb.start() : sb.stop());
  }

  async remove(ref: string, missingOk: boolean): Promise<void> {
    if (missingOk) await Sandbox.kill(ref, this.conn);
    else await (await Sandbox.connect(ref, this.conn)).kill();
  }

  close(): void {
    // The open request would keep the process alive; ending it makes the daemon kill the command.
    if (this.abandoned) process.exit();
  }
}

/** The API's Sandbox object, as the daemon sent it. */
function apiShape(i: SandboxInfo): SandboxSummary & Record<string, unknown> {
  return { id: i.sandboxId, name: i.name, template: i.template, backend: i.backend, status: i.status, createdAt: i.createdAt, expiresAt: i.expiresAt, spec: i.spec, ...(i.identity ? { identity: i.identity } : {}), ...(i.declared ? { declared: true } : {}) };
}

const SIGPIPE = 13;

/** Thrown into the SDK's exec stream when stdout's reader is gone: it drops the request. */
class StdoutClosed extends Error {}

/**
 * Writes output to a stream; while the stream is full the returned
 * promise keeps the SDK's NDJSON reader paused (so the response body, and
 * not this process, holds what the command writes meanwhile). Once the
 * stream's reader is gone, `drop` ends the request; otherwise the output is
 * dropped.
 */
function sink(out: Output, drop: boolean): (text: string) => Promise<void> | undefined {
  const check = () => {
    if (drop && out.closed) throw new StdoutClosed("stdout closed");
  };
  return (text) => {
    check();
    return out.write(text)?.then(check);
  };
}

async function readAll(input: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}
