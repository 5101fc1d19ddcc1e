import os from "node:os";
import type { Readable } from "node:stream";

/**
 * Where the sandbox commands (run, create, exec, cp, ls, inspect, logs, rm,
 * stop, start, promote) act: the state dir through the library
 * (backend-local.ts) or a daemon through the SDK (backend-remote.ts).
 * context.ts picks one; flags, output and exit codes are the same either
 * way.
 */
export interface CliTarget {
  /** Starts a sandbox and resolves once it runs. */
  create(spec: SpecInput): Promise<{ id: string; name: string }>;
  /** Runs a command with the terminal's streams; Ctrl-C and SIGTERM reach the command. */
  exec(ref: string, req: ExecInput): Promise<ExecEnd>;
  /** Starts a command on a terminal in the sandbox (`shell`, `exec -t`); it dies with this process. */
  terminal(ref: string, req: TerminalInput): Promise<TerminalSession>;
  /** File access to one sandbox, for `cp`; close it when done. */
  files(ref: string): Promise<SandboxFiles>;
  list(): Promise<SandboxSummary[]>;
  /** The sandbox's record with its usage (null when unknown), as `inspect` prints it. */
  inspect(ref: string): Promise<object>;
  /** A VM's console or a container's runtime log, its last 64 KiB. */
  logs(ref: string): Promise<string>;
  /** Makes a sandbox persistent: no timeout, kept (with what it wrote) until removed. */
  promote(ref: string): Promise<void>;
  /** Ends a persistent sandbox's processes, keeping its disk; or runs a stopped one again. */
  setRunning(ref: string, running: boolean): Promise<void>;
  /** Changes a sandbox's network (egress policy, named networks) at once. */
  setNetwork(ref: string, network: NonNullable<SpecInput["network"]>): Promise<void>;
  /** Where the daemon serves one of a sandbox's ports (a daemon only: the port proxy is its). */
  port(ref: string, port: number): Promise<{ url: string; tokenUrl?: string; public: boolean }>;
  /** Removes a sandbox; one that does not exist is an error unless `missingOk`. */
  remove(ref: string, missingOk: boolean): Promise<void>;
  /** Called once the command is over (its exit code set). */
  close(): void;
}

/** The SandboxSpec input the flags describe; the library or the daemon validates it. */
export interface SpecInput {
  name?: string;
  template: string;
  backend: string;
  /** A VM's fixed MAC and/or vsock CID. */
  identity?: { mac?: string; cid?: number };
  resources: { memory?: string; disk?: string; vcpus?: number; pids?: number };
  env: Record<string, string>;
  labels: Record<string, string>;
  lifetime: { mode: "ephemeral" | "persistent"; timeoutSeconds?: number };
  workdir?: string;
  shares?: { source: string; target: string; readOnly: boolean }[];
  nix?: { writable: boolean };
  /** "none", "nat", or the object form (core/network-spec.ts). */
  network?: string | { mode: string; egress: { allow?: string[]; deny: string[] }; networks: string[] };
}

export interface ExecInput {
  argv: string[];
  /** Over the sandbox's env. */
  env: Record<string, string>;
  workdir?: string;
  /** Pass the CLI's stdin to the command. */
  stdin: boolean;
  timeoutSeconds?: number;
}

export interface TerminalInput {
  argv: string[];
  /** Over the sandbox's env (TERM included). */
  env: Record<string, string>;
  workdir?: string;
  size: { rows: number; cols: number };
  /** Its output, as it comes; a returned promise (a full stdout) holds the rest back. */
  onOutput(data: Buffer): Promise<void> | undefined;
}

/** A command on a terminal in a sandbox (terminal.ts drives it from the user's terminal). */
export interface TerminalSession {
  /** Keystrokes, in order. */
  write(data: Buffer): Promise<void>;
  resize(size: { rows: number; cols: number }): Promise<void>;
  /** Kills it (the CLI is going). */
  kill(): Promise<void>;
  /** Its end, once its output has all been handed to onOutput. */
  readonly done: Promise<ExecEnd>;
}

export interface ExecEnd {
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  /** Set when the OOM killer ended the command: the sandbox's memory limit. */
  oom: { memoryLimit: number } | null;
}

/** What `ls` shows of a sandbox; `ls --json` prints the whole object the target returned. */
export interface SandboxSummary {
  id: string;
  name: string;
  status: string;
  createdAt: string;
  expiresAt: string | null;
  spec: { template: string; backend: string; resources: { memory: number }; lifetime: { mode: string } };
  /** Made by the operator's declared state (corral daemon --declared). */
  declared?: boolean;
}

export interface SandboxFiles {
  /** Rejects when nothing is at the path. */
  stat(path: string): Promise<{ type: "file" | "dir" | "symlink" | "other"; mode: number }>;
  /** Writes a file, creating its parent directories. */
  write(path: string, data: Readable, mode: number): Promise<void>;
  read(path: string): Promise<Readable>;
  /** A tar stream of a path, its members named from the path's basename (agent/archive.ts archiveOut). */
  downloadArchive(path: string): Promise<Readable>;
  /** Extracts a tar stream into a directory, made when missing (agent/archive.ts archiveIn). */
  uploadArchive(dir: string, archive: Readable): Promise<void>;
  close(): void;
}

/** Calls `fn` with the signal's number on each SIGINT and SIGTERM; the returned function stops that. */
export function onInterrupt(fn: (signo: number) => void): () => void {
  const names = ["SIGINT", "SIGTERM"] as const;
  const handlers = names.map((name) => () => fn(os.constants.signals[name]));
  names.forEach((name, i) => process.on(name, handlers[i] as () => void));
  return () => names.forEach((name, i) => process.off(name, handlers[i] as () => void));
}
