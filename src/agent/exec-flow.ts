import type { AgentConnection } from "./connection.js";

/**
 * Bytes of a command's output the agent may send unacknowledged, and of its
 * stdin the host may send unacknowledged (docs/protocol.md, exec
 * `window`). A stalled consumer thus holds at most this much of one
 * command's output here (plus the drain at its exit, ≤ 4 MiB), and stops
 * that command only: the connection's other commands go on. 256 KiB is
 * four quarter-window credits in flight: `cat /dev/zero` to a fast reader
 * ran at the same rate as with no window (the agent's own 1 MiB
 * connection pause), measured here.
 */
export const EXEC_WINDOW = 256 * 1024;

/**
 * Per-command flow control, once the agent said (in `started`) that it
 * speaks it: output is credited back as its consumer takes it, and stdin
 * waits for the agent's acknowledgements. An older agent (no `window` in
 * `started`) gets the connection-wide pause instead (AgentConnection.hold).
 */
export class ExecFlow {
  /** The agent acknowledged `window` in `started`. */
  enabled = false;
  private holds = 0;
  private owed = 0; // output taken by its consumer, not yet credited
  private stdinOut = 0; // stdin sent, not yet acknowledged
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private over: Error | undefined;

  constructor(
    private readonly conn: AgentConnection,
    private readonly id: number,
  ) {}

  /** A chunk of output went to its consumer; `pending` (its promise, if any) holds the credit until it settles. */
  delivered(bytes: number, pending: unknown): void {
    if (!this.enabled) {
      this.conn.holdFor(pending);
      return;
    }
    if (typeof (pending as PromiseLike<unknown> | undefined)?.then === "function") {
      const release = this.hold();
      (pending as PromiseLike<unknown>).then(release, release);
    }
    this.owed += bytes;
    this.maybeCredit();
  }

  /** Stops crediting this command's output until released (holds nest). */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.maybeCredit();
    };
  }

  private maybeCredit(): void {
    if (this.holds > 0 || this.over || this.owed < EXEC_WINDOW / 4) return;
    const bytes = this.owed;
    this.owed = 0;
    try {
      this.conn.send({ op: "credit", id: this.id, bytes });
    } catch {
      // The connection is gone: the command's stream fails through it.
    }
  }

  /** Waits until `bytes` more of stdin fit in the window (at once for an older agent). */
  async room(bytes: number): Promise<void> {
    while (this.enabled && !this.over && this.stdinOut > 0 && this.stdinOut + bytes > EXEC_WINDOW) {
      await new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    }
    if (this.over) throw this.over;
    this.stdinOut += bytes;
  }

  /** The agent acknowledged `bytes` of stdin. */
  acknowledged(bytes: number): void {
    this.stdinOut = Math.max(0, this.stdinOut - bytes);
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** The command's stream is over: stdin still waiting is dropped, as the agent drops it. */
  end(e: Error): void {
    this.over ??= e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}
