/**
 * The terminal's output streams as commands write to them: a write to a
 * full stream (a slow reader, a full pipe) hands back a promise that
 * settles once it drained, so a command's output is paused at its source
 * instead of piling up in this process (Node queues whatever a full pipe
 * does not take, without bound); and a stdout its reader closed (EPIPE)
 * ends the command quietly with status 141, 128 + SIGPIPE, as a program
 * killed by SIGPIPE would in a shell pipeline (`corral exec box -- cat
 * big | head`). Bound: one chunk the caller already holds plus the
 * stream's highWaterMark (16 KiB) per stream.
 */
export class Output {
  private closedBy: Error | undefined;
  private waiting: Promise<void> | undefined;
  private readonly onClosed = new Set<() => void>();

  constructor(private readonly stream: NodeJS.WritableStream) {
    // EPIPE, ECONNRESET ...: the reader is gone. Without a listener Node
    // throws it as an uncaught exception (a stack trace, status 1).
    stream.on("error", (e: Error) => this.close(e));
  }

  /** The reader went away; what is written from now on is dropped. */
  get closed(): boolean {
    return this.closedBy !== undefined;
  }

  /** Writes `chunk`; undefined when the stream took it, else a promise that settles once it drained or closed. */
  write(chunk: Buffer | string): Promise<void> | undefined {
    if (this.closed) return undefined;
    if (this.stream.write(chunk)) return undefined;
    return (this.waiting ??= new Promise<void>((resolve) => {
      const done = () => {
        this.stream.off("drain", done);
        this.onClosed.delete(done);
        this.waiting = undefined;
        resolve();
      };
      this.stream.on("drain", done);
      this.onClosed.add(done);
    }));
  }

  /** Calls `fn` once if the reader goes away; the returned function stops that. */
  whenClosed(fn: () => void): () => void {
    if (this.closed) {
      fn();
      return () => {};
    }
    this.onClosed.add(fn);
    return () => this.onClosed.delete(fn);
  }

  private close(e: Error): void {
    if (this.closed) return;
    this.closedBy = e;
    for (const fn of [...this.onClosed]) fn();
    this.onClosed.clear();
  }
}

let out: Output | undefined;
let err: Output | undefined;

/** process.stdout as an Output (made on first use: touching process.stdout loads its stream modules). */
export function stdout(): Output {
  return (out ??= new Output(process.stdout));
}

export function stderr(): Output {
  return (err ??= new Output(process.stderr));
}

/** Whether a reader closed stdout during this run: the exit status is then 141. */
export function stdoutClosed(): boolean {
  return out?.closed ?? false;
}

/** Prints text a command produced (tables, names, JSON). */
export function print(text: string): Promise<void> | undefined {
  return stdout().write(text);
}

/** 128 + SIGPIPE: the status a shell shows for a writer whose reader went away. */
export const EXIT_STDOUT_CLOSED = 141;
