import { archiveIn, archiveOut } from "../agent/archive.js";
import { CorralError, InvalidArgumentError } from "../core/errors.js";
import type { NetworkInput } from "../core/network-spec.js";
import type { Sandboxes } from "../runtime/sandboxes.js";
import { withProgress } from "./progress.js";
import { stderr, stdout } from "./stdio.js";
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

/** The sandbox commands on the state dir, through the library (no daemon needed). */
export class LocalTarget implements CliTarget {
  private opened: Promise<Sandboxes> | undefined;

  constructor(private readonly open: () => Promise<Sandboxes>) {}

  private state(): Promise<Sandboxes> {
    return (this.opened ??= this.open());
  }

  async create(spec: SpecInput): Promise<{ id: string; name: string }> {
    const s = await this.state();
    const sb = await withProgress(spec.template, (onProgress) => s.create(spec, { onProgress }));
    return { id: sb.id, name: sb.name };
  }

  async exec(ref: string, req: ExecInput): Promise<ExecEnd> {
    const s = await this.state();
    const out = stdout();
    const err = stderr();
    // A full stdout or stderr pauses this process's agent connection (see
    // ExecCallbacks), and with it the command.
    const { record, handle, outcome, end } = await s.startExec(
      ref,
      {
        argv: req.argv,
        env: req.env,
        ...(req.workdir ? { cwd: req.workdir } : {}),
        stdin: req.stdin,
        ...(req.timeoutSeconds ? { timeoutMs: req.timeoutSeconds * 1000 } : {}),
      },
      { onStdout: (b) => out.write(b), onStderr: (b) => err.write(b) },
    );
    // Its reader gone, the command has nowhere to write: end it (main exits 141).
    const unwatch = out.whenClosed(() => void handle.kill(9).catch(() => {}));
    try {
      onInterrupt((signo) => void handle.kill(signo).catch(() => {}));
      if (req.stdin) {
        void (async () => {
          for await (const chunk of process.stdin) await handle.writeStdin(chunk as Buffer);
          await handle.closeStdin();
        })().catch(() => {});
      }
      const r = await outcome;
      if (req.stdin) process.stdin.destroy();
      const oom = r.oomKilled ? { memoryLimit: record.spec.resources.memory } : null;
      return { exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, oom };
    } finally {
      unwatch();
      end();
    }
  }

  async terminal(ref: string, req: TerminalInput): Promise<TerminalSession> {
    const s = await this.state();
    // Its own agent connection (not keepAlive): the command dies with this process.
    const { record, handle, outcome, end } = await s.startExec(
      ref,
      { argv: req.argv, env: req.env, ...(req.workdir ? { cwd: req.workdir } : {}), pty: req.size },
      { onStdout: (b) => req.onOutput(b), onStderr: (b) => req.onOutput(b) },
    );
    const done = outcome.then(
      (r): ExecEnd => ({ exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, oom: r.oomKilled ? { memoryLimit: record.spec.resources.memory } : null }),
    );
    void done.finally(end).catch(() => {});
    return {
      write: (data) => handle.writeStdin(data),
      resize: (size) => handle.resize(size),
      kill: () => handle.kill(9),
      done,
    };
  }

  async files(ref: string): Promise<SandboxFiles> {
    const client = await (await this.state()).agent(ref);
    return {
      stat: (path) => client.stat(path),
      write: async (path, data, mode) => {
        await client.writeFile(path, data, { mode, mkdirs: true });
      },
      read: async (path) => client.readFile(path),
      // The sandbox's own tar through this connection; closing it (close) kills a tar still running.
      downloadArchive: (path) => archiveOut(client, path),
      uploadArchive: async (dir, archive) => {
        const r = await archiveIn(client, dir, archive);
        if (!r.complete) archive.destroy(); // the end of the archive came before the end of its stream
      },
      close: () => client.close(),
    };
  }

  async list(): Promise<SandboxSummary[]> {
    return (await this.state()).list();
  }

  async inspect(ref: string): Promise<object> {
    const s = await this.state();
    const info = await s.get(ref);
    const usage = info.status === "running" ? await s.stats(ref) : null;
    return { ...info, usage };
  }

  async logs(ref: string): Promise<string> {
    return (await this.state()).logs(ref);
  }

  async promote(ref: string): Promise<void> {
    (await this.state()).promote(ref);
  }

  async setNetwork(ref: string, network: NonNullable<SpecInput["network"]>): Promise<void> {
    await (await this.state()).setNetwork(ref, network as NetworkInput);
  }

  async port(): Promise<{ url: string; public: boolean }> {
    throw new InvalidArgumentError("ports are served by a daemon: give --api-url (or $CORRAL_API_URL)");
  }

  async setRunning(ref: string, running: boolean): Promise<void> {
    const s = await this.state();
    await (running ? s.start(ref) : s.stop(ref));
  }

  async remove(ref: string, missingOk: boolean): Promise<void> {
    try {
      await (await this.state()).destroy(ref);
    } catch (e) {
      if (!(missingOk && e instanceof CorralError && e.status === 404)) throw e;
    }
  }

  close(): void {}
}
