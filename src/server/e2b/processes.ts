import type { ExecHandle } from "../../agent/client.js";
import type { ExecOutcome } from "../../runtime/sandboxes.js";

/** A command's output or its end, as the Process service streams them. */
export type ProcessEventOut =
  | { readonly kind: "stdout" | "stderr"; readonly data: Buffer }
  | { readonly kind: "end"; readonly end: EndInfo }
  | { readonly kind: "failed"; readonly error: unknown };

/** envd's EndEvent: Go's ProcessState as it describes an exit. */
export interface EndInfo {
  readonly exitCode: number;
  readonly exited: boolean;
  readonly status: string;
  readonly error?: string;
}

export interface ProcessConfigOut {
  readonly cmd: string;
  readonly args: readonly string[];
  readonly envs: Readonly<Record<string, string>>;
  readonly cwd: string | undefined;
}

/** Output a subscriber (a Start or Connect stream) may have waiting, bytes: past it the command is held. */
export const SUBSCRIBER_QUEUE_BYTES = 1024 * 1024;
/** Commands a sandbox may have running through the E2B API at once. */
export const MAX_PROCESSES_PER_SANDBOX = 4096;
/** Streams that may follow one command at once (its Start and Connects). */
export const MAX_SUBSCRIBERS = 64;

const SIGNAL_NAMES: Readonly<Record<number, string>> = { 1: "hangup", 2: "interrupt", 3: "quit", 6: "aborted", 9: "killed", 13: "broken pipe", 14: "alarm clock", 15: "terminated" };

/** How envd (Go's os.ProcessState) reports an outcome: "exit status 1", "signal: killed"; error only for a failure. */
export function endInfo(r: Pick<ExecOutcome, "exitCode" | "signal">): EndInfo {
  if (r.exitCode !== null) {
    const status = `exit status ${r.exitCode}`;
    return { exitCode: r.exitCode, exited: true, status, ...(r.exitCode !== 0 ? { error: status } : {}) };
  }
  const status = `signal: ${SIGNAL_NAMES[r.signal ?? 0] ?? `signal ${r.signal ?? "?"}`}`;
  return { exitCode: -1, exited: false, status, error: status };
}

/**
 * One stream's view of a command: what came since it subscribed, up to
 * SUBSCRIBER_QUEUE_BYTES waiting; while it is over, the command's output
 * callback waits (which holds the agent connection, so the command blocks
 * on its writes instead of its output piling up here).
 */
export class Subscriber {
  private readonly queue: ProcessEventOut[] = [];
  private bytes = 0;
  private wake: (() => void) | undefined;
  private drained: (() => void)[] = [];
  closed = false;

  constructor(private readonly onClose: (s: Subscriber) => void) {}

  push(e: ProcessEventOut): void {
    if (this.closed) return;
    this.queue.push(e);
    if (e.kind === "stdout" || e.kind === "stderr") this.bytes += e.data.length;
    this.wake?.();
  }

  get full(): boolean {
    return !this.closed && this.bytes > SUBSCRIBER_QUEUE_BYTES;
  }

  /** Resolves when the queue is back under its bound (or the subscriber has gone). */
  whenDrained(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((r) => this.drained.push(r));
  }

  /** The next event; "idle" after `idleMs` with none (a keepalive is due); undefined once closed. */
  async next(idleMs: number): Promise<ProcessEventOut | "idle" | undefined> {
    while (!this.closed) {
      const e = this.queue.shift();
      if (e) {
        if (e.kind === "stdout" || e.kind === "stderr") this.bytes -= e.data.length;
        if (!this.full) for (const r of this.drained.splice(0)) r();
        return e;
      }
      let timer: NodeJS.Timeout | undefined;
      const idle = await new Promise<boolean>((resolve) => {
        this.wake = () => resolve(false);
        timer = setTimeout(() => resolve(true), idleMs);
      });
      this.wake = undefined;
      clearTimeout(timer);
      if (idle && this.queue.length === 0) return "idle";
    }
    return undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.bytes = 0;
    this.wake?.();
    for (const r of this.drained.splice(0)) r();
    this.onClose(this);
  }
}

/**
 * A command started through envd's Process service. It outlives the
 * request that started it (as envd's: a client that goes does not kill
 * it; its timeout, a signal or the sandbox's end do); any number of
 * streams follow its output from when they subscribe (Start from the
 * beginning, Connect from then on); output while none listens is dropped,
 * as envd drops it.
 */
export class E2bProcess {
  pid = 0;
  handle: ExecHandle | undefined;
  readonly stdin: boolean;
  private readonly subscribers = new Set<Subscriber>();
  /** The last event, once there is one: a stream that subscribes after it gets it at once. */
  private last: ProcessEventOut | undefined;

  constructor(
    readonly sandboxId: string,
    readonly config: ProcessConfigOut,
    readonly tag: string | undefined,
    stdin: boolean,
  ) {
    this.stdin = stdin;
  }

  /** A new stream following the command; undefined when MAX_SUBSCRIBERS already do. */
  subscribe(): Subscriber | undefined {
    if (this.subscribers.size >= MAX_SUBSCRIBERS) return undefined;
    const s = new Subscriber((x) => this.subscribers.delete(x));
    this.subscribers.add(s);
    if (this.last) s.push(this.last);
    return s;
  }

  /** The output callback: a promise while a subscriber is over its bound (the agent connection waits for it). */
  output(kind: "stdout" | "stderr", data: Buffer): Promise<void> | undefined {
    let wait: Promise<void>[] | undefined;
    for (const s of this.subscribers) {
      s.push({ kind, data });
      if (s.full) (wait ??= []).push(s.whenDrained());
    }
    return wait && Promise.all(wait).then(() => undefined);
  }

  /** The last event to every subscriber; they close once they have read it. */
  finish(e: ProcessEventOut): void {
    this.last = e;
    for (const s of this.subscribers) s.push(e);
  }
}

/** The commands started through the E2B API, per sandbox, while they run. */
export class ProcessTable {
  private readonly bySandbox = new Map<string, Map<number, E2bProcess>>();

  count(sandboxId: string): number {
    return this.bySandbox.get(sandboxId)?.size ?? 0;
  }

  add(p: E2bProcess): void {
    let m = this.bySandbox.get(p.sandboxId);
    if (!m) this.bySandbox.set(p.sandboxId, (m = new Map()));
    m.set(p.pid, p);
  }

  remove(p: E2bProcess): void {
    const m = this.bySandbox.get(p.sandboxId);
    if (m?.get(p.pid) === p) m.delete(p.pid);
    if (m?.size === 0) this.bySandbox.delete(p.sandboxId);
  }

  list(sandboxId: string): E2bProcess[] {
    return [...(this.bySandbox.get(sandboxId)?.values() ?? [])];
  }

  byPid(sandboxId: string, pid: number): E2bProcess | undefined {
    return this.bySandbox.get(sandboxId)?.get(pid);
  }

  byTag(sandboxId: string, tag: string): E2bProcess | undefined {
    return this.list(sandboxId).find((p) => p.tag === tag);
  }

  /**
   * The daemon is stopping: every stream following a command ends with
   * `error` (the commands run on in their sandboxes, as envd's outlive
   * their requests), so no open stream holds the listener's close.
   */
  shutdown(error: unknown): void {
    for (const m of this.bySandbox.values()) for (const p of m.values()) p.finish({ kind: "failed", error });
  }
}
