/** What the host-side agent client takes and gives (src/agent/client.ts). */

export interface ExecRequest {
  /** Program and arguments; or use `cmd` for a shell string. */
  readonly argv?: readonly string[];
  readonly cmd?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Keep stdin open as a pipe (otherwise /dev/null). */
  readonly stdin?: boolean;
  readonly timeoutMs?: number;
  /** Let the process outlive this connection; the agent then keeps its last 64 KiB of output for `attach`. */
  readonly keepAlive?: boolean;
  /** Run on a new pseudo-terminal of this size (stdin implied, output all on stdout). */
  readonly pty?: TerminalSize;
  /** Output only to attach streams (and the ring), not to this one: it gets the start and the exit. */
  readonly detached?: boolean;
  /** A label `processes()` reports (at most 256 bytes). */
  readonly tag?: string;
}

/** A terminal's size in character cells. */
export interface TerminalSize {
  readonly rows: number;
  readonly cols: number;
}

/** A command the agent runs (AgentClient.processes). */
export interface ProcessInfo {
  readonly pid: number;
  /** Its argv as started; cut when longer than 4 KiB (`truncated`). */
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly tag: string | null;
  readonly pty: boolean;
  readonly keepAlive: boolean;
  readonly detached: boolean;
  readonly truncated: boolean;
}

/** What a directory watch reports (AgentClient.watch). */
export interface WatchEvent {
  /**
   * create (also a name moved in), write, remove, rename (a name moved
   * away: the old name), chmod; overflow: events were lost (the kernel's
   * queue filled while the reader was behind), `name` is then "".
   */
  readonly type: "create" | "write" | "remove" | "rename" | "chmod" | "overflow";
  /** Relative to the watched directory ("sub/file"). */
  readonly name: string;
  readonly dir: boolean;
}

/**
 * Where a command's output goes. A callback may return a promise (its
 * consumer is full, e.g. the CLI's stdout to a slow pipe): the command's
 * credit is held until it settles, and the agent stops reading that
 * command's pipes once a window (EXEC_WINDOW, 256 KiB) is unacknowledged,
 * so the command blocks instead of its output piling up; the connection's
 * other commands go on. (An agent older than per-command flow control has
 * the whole connection paused instead.)
 */
export interface ExecCallbacks {
  onStdout?(chunk: Buffer): unknown;
  onStderr?(chunk: Buffer): unknown;
}

export interface ExecResult {
  /** Exit status, or null when killed by a signal. */
  readonly exitCode: number | null;
  readonly signal: number | null;
  readonly timedOut: boolean;
}

export interface FileStat {
  readonly type: "file" | "dir" | "symlink" | "other";
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtimeMs: number;
  readonly target: string | null;
}

export interface DirEntry {
  readonly name: string;
  readonly type: FileStat["type"];
  readonly size: number;
  readonly mode: number;
  readonly mtimeMs: number;
}
