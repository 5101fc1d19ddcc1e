import type net from "node:net";
import type { Duplex, Readable } from "node:stream";
import { TimeoutError } from "../core/errors.js";
import { connectHybridVsock, VsockHandshakeError } from "./hybrid-vsock.js";
import { connectUnixNoFollow } from "./unix-socket.js";
import type { DirEntry, ExecCallbacks, ExecRequest, ExecResult, FileStat, ProcessInfo, TerminalSize, WatchEvent } from "./client-types.js";
import { AgentConnection, AgentUnavailableError } from "./connection.js";
import { ExecHandle, execStream, sendSignal, startExec } from "./exec.js";
import * as files from "./file-ops.js";
import * as procs from "./processes.js";
import { watchDir, type WatchHandle } from "./watch.js";
import { connectTcp } from "./tcp-stream.js";

export type { DirEntry, ExecCallbacks, ExecRequest, ExecResult, FileStat, ProcessInfo, TerminalSize, WatchEvent } from "./client-types.js";
export { AgentUnavailableError } from "./connection.js";
export { ExecHandle } from "./exec.js";
export type { WatchHandle } from "./watch.js";
export { connectUnixNoFollow } from "./unix-socket.js";

/**
 * The host's client of one agent connection: commands and files. The
 * connection itself (frames, streams by id, flow control) is
 * AgentConnection (connection.ts); commands are exec.ts, files file-ops.ts.
 */
export class AgentClient {
  private readonly conn: AgentConnection;

  private constructor(socket: net.Socket) {
    this.conn = new AgentConnection(socket);
  }

  /** Wraps an already connected byte stream (unix socket, vsock, serial). */
  static fromSocket(socket: net.Socket): AgentClient {
    return new AgentClient(socket);
  }

  /**
   * Connects to the agent's socket, retrying until it is there or the
   * deadline passes (the agent creates it a few ms after the sandbox starts).
   */
  static async connect(path: string, timeoutMs = 5000): Promise<AgentClient> {
    const deadline = Date.now() + timeoutMs;
    let delay = 0.5;
    for (;;) {
      try {
        return new AgentClient(await connectUnixNoFollow(path));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "ENOENT" && code !== "ECONNREFUSED") {
          throw new AgentUnavailableError(`cannot reach the agent at ${path}: ${(e as Error).message}`, { cause: e });
        }
        if (Date.now() >= deadline) throw new TimeoutError(`the agent did not answer at ${path} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 20);
      }
    }
  }

  /**
   * Connects to the agent in a VM through the hypervisor's hybrid vsock
   * socket (Cloud Hypervisor, Firecracker): `CONNECT <port>` on `uds`, see
   * connectHybridVsock. Retries while the socket is missing or the guest
   * does not accept yet (the agent starts after the guest kernel boots),
   * until the deadline.
   */
  static async connectVsock(uds: string, port: number, timeoutMs = 5000): Promise<AgentClient> {
    const deadline = Date.now() + timeoutMs;
    let delay = 1;
    for (;;) {
      let why: string;
      try {
        return new AgentClient(await connectHybridVsock(uds, port, Math.max(1, Math.min(2000, deadline - Date.now()))));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (!(e instanceof VsockHandshakeError) && code !== "ENOENT" && code !== "ECONNREFUSED") {
          throw new AgentUnavailableError(`cannot reach the agent through ${uds}: ${(e as Error).message}`, { cause: e });
        }
        why = (e as Error).message;
      }
      if (Date.now() >= deadline) {
        throw new TimeoutError(`the agent did not answer on vsock port ${port} through ${uds} within ${timeoutMs} ms (last: ${why})`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 50);
    }
  }

  /** Stops reading until released (holds nest): the agent then pauses this connection's commands (docs/protocol.md). */
  hold(): () => void {
    return this.conn.hold();
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  close(): void {
    this.conn.close();
  }

  async hello(): Promise<{ version: number; agent: string; pid: number }> {
    const h = await this.conn.request({ op: "hello" }, "hello");
    return { version: Number(h["version"]), agent: String(h["agent"]), pid: Number(h["pid"]) };
  }

  exec(req: ExecRequest, cb: ExecCallbacks = {}): ExecHandle {
    return startExec(this.conn, req, cb);
  }

  /** Runs a command to completion, collecting its output. */
  async run(req: ExecRequest): Promise<ExecResult & { stdout: Buffer; stderr: Buffer }> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const r = await this.exec(req, { onStdout: (b) => out.push(b), onStderr: (b) => err.push(b) }).result;
    return { ...r, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
  }

  signal(target: number, signal: number): Promise<void> {
    return sendSignal(this.conn, target, signal);
  }

  /**
   * Joins a command the agent runs (started by any connection): its last
   * 64 KiB of output first when it is keepAlive, then its output live and
   * its exit, as `exec` gives them. The handle's stdin, kill and resize
   * reach the command; `detach` lets go of it. ESRCH when no such command.
   */
  attach(pid: number, cb: ExecCallbacks = {}): ExecHandle {
    return execStream(this.conn, { op: "attach", pid }, cb);
  }

  /** The commands the agent runs, whoever started them. */
  processes(): Promise<ProcessInfo[]> {
    return procs.processes(this.conn);
  }

  /** Sends `signal` to the process group of the command with this pid (ESRCH: the agent runs none). */
  async signalPid(pid: number, signal: number): Promise<void> {
    await this.conn.request({ op: "signal", pid, signal }, "ok");
  }

  /** Sets the terminal size of the command with this pid (ESRCH, or ENOTTY without a pty). */
  async resize(pid: number, size: TerminalSize): Promise<void> {
    await this.conn.request({ op: "resize", pid, rows: size.rows, cols: size.cols }, "ok");
  }

  /** Writes to the stdin of the command with this pid (dropped, as the agent does, if it has none); `eof` closes it. */
  writeStdinPid(pid: number, data: Buffer | undefined, eof = false): Promise<void> {
    return procs.writeStdinPid(this.conn, pid, data, eof);
  }

  /** Watches a directory inside the sandbox (inotify in the agent); see watchDir. */
  watch(path: string, opts: { recursive?: boolean }, onEvent: (e: WatchEvent) => unknown): WatchHandle {
    return watchDir(this.conn, path, opts, onEvent);
  }

  /** Renames a file or directory inside the sandbox (EEXIST with noReplace when `to` exists, EXDEV across mounts). */
  async rename(from: string, to: string, opts: { noReplace?: boolean } = {}): Promise<void> {
    await this.conn.request({ op: "rename", path: from, to, noReplace: opts.noReplace ?? false }, "ok");
  }

  /** Streams `source` into a file inside the sandbox. */
  writeFile(
    path: string,
    source: Buffer | string | AsyncIterable<Buffer | string>,
    opts: { mode?: number; append?: boolean; mkdirs?: boolean } = {},
  ): Promise<{ size: number }> {
    return files.writeFile(this.conn, path, source, opts);
  }

  /**
   * Streams a file out of the sandbox. The returned Readable applies
   * backpressure by pausing the connection when the consumer falls behind.
   */
  readFile(path: string, opts: { offset?: number; length?: number } = {}): Readable {
    return files.readFile(this.conn, path, opts);
  }

  async readFileBuffer(path: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of this.readFile(path)) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  stat(path: string, follow = true): Promise<FileStat> {
    return files.stat(this.conn, path, follow);
  }

  list(path: string): Promise<DirEntry[]> {
    return files.list(this.conn, path);
  }

  async mkdir(path: string, opts: { parents?: boolean; mode?: number } = {}): Promise<void> {
    await this.conn.request({ op: "mkdir", path, parents: opts.parents ?? false, mode: opts.mode ?? 0o755 }, "ok");
  }

  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    await this.conn.request({ op: "remove", path, recursive: opts.recursive ?? false }, "ok");
  }
  /**
   * A TCP connection to `port` on the sandbox's loopback (127.0.0.1, then
   * ::1), through this agent connection, as a Duplex (tcp-stream.ts): the
   * daemon's port proxy, and SSH -L forwarding. Works whatever the
   * sandbox's network (none included) and for VMs alike. Closing the
   * client closes the socket.
   */
  connectTcp(port: number): Promise<Duplex> {
    return connectTcp(this.conn, port);
  }

}
