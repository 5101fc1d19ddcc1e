import type { ExecHandle } from "../../agent/client.js";
import type { ExecOutcome } from "../../runtime/sandboxes.js";
import { StreamQueue } from "./stream-queue.js";

/** Where output came from: a pipe, or (a command on a terminal) the terminal, envd's "pty" output. */
export type OutputKind = "stdout" | "stderr" | "pty";

/** A command's output or its end, as the Process service streams them. */
export type ProcessEventOut =
  | { readonly kind: OutputKind; readonly data: Buffer }
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
 * SUBSCRIBER_QUEUE_BYTES of output waiting; while it is over, the
 * command's output callback waits (which holds the command's credit, a
 * 256 KiB window: the command blocks on its writes instead of its output
 * piling up here, and the sandbox's other commands go on).
 */
export class Subscriber extends StreamQueue<ProcessEventOut> {
  constructor(onClose: (s: Subscriber) => void) {
    super(SUBSCRIBER_QUEUE_BYTES, outputBytes, (q) => onClose(q as Subscriber));
  }
}

function outputBytes(e: ProcessEventOut): number {
  return e.kind === "end" || e.kind === "failed" ? 0 : e.data.length;
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
  /** Started on a terminal: its output is envd's "pty" output, its input the terminal's. */
  readonly pty: boolean;
  private readonly subscribers = new Set<Subscriber>();
  /** The last event, once there is one: a stream that subscribes after it gets it at once. */
  private last: ProcessEventOut | undefined;

  constructor(
    readonly sandboxId: string,
    readonly config: ProcessConfigOut,
    readonly tag: string | undefined,
    stdin: boolean,
    pty = false,
  ) {
    this.stdin = stdin || pty;
    this.pty = pty;
  }

  /** A new stream following the command; undefined when MAX_SUBSCRIBERS already do. */
  subscribe(): Subscriber | undefined {
    if (this.subscribers.size >= MAX_SUBSCRIBERS) return undefined;
    const s = new Subscriber((x) => this.subscribers.delete(x));
    this.subscribers.add(s);
    if (this.last) s.push(this.last);
    return s;
  }

  /** The output callback: a promise while a subscriber is over its bound (the command's credit waits for it). */
  output(kind: OutputKind, data: Buffer): Promise<void> | undefined {
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
  /** Connect streams following each command (`sandbox pid`), at most MAX_SUBSCRIBERS each. */
  private readonly joined = new Map<string, number>();

  /** How each open Connect stream is ended when the daemon stops. */
  private readonly joinedStops = new Set<(error: unknown) => void>();

  /**
   * A place for one more Connect stream on a command, and its release;
   * undefined when MAX_SUBSCRIBERS already follow it. `stop` ends the
   * stream if the daemon stops first.
   */
  joinSlot(sandboxId: string, pid: number, stop: (error: unknown) => void): (() => void) | undefined {
    const key = `${sandboxId} ${pid}`;
    const n = this.joined.get(key) ?? 0;
    if (n >= MAX_SUBSCRIBERS) return undefined;
    this.joined.set(key, n + 1);
    this.joinedStops.add(stop);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.joinedStops.delete(stop);
      const left = (this.joined.get(key) ?? 1) - 1;
      if (left > 0) this.joined.set(key, left);
      else this.joined.delete(key);
    };
  }

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
    for (const stop of [...this.joinedStops]) stop(error);
  }
}
