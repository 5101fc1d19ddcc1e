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
  /** Let the process outlive this connection. */
  readonly keepAlive?: boolean;
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
