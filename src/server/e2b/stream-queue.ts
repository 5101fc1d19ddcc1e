/**
 * What one server stream (a Start, Connect or WatchDir) has waiting for
 * its client: events in order, up to `bound` units (bytes of output, or
 * events) queued. Past it the producer is told to wait (`whenDrained`):
 * its agent connection is held, so the agent stops reading the command's
 * pipes or the kernel's inotify queue instead of it piling up here.
 */
export class StreamQueue<T> {
  private readonly queue: T[] = [];
  private units = 0;
  private wake: (() => void) | undefined;
  private drained: (() => void)[] = [];
  closed = false;

  constructor(
    private readonly bound: number,
    private readonly size: (e: T) => number,
    private readonly onClose: (q: StreamQueue<T>) => void = () => {},
  ) {}

  push(e: T): void {
    if (this.closed) return;
    this.queue.push(e);
    this.units += this.size(e);
    this.wake?.();
  }

  get full(): boolean {
    return !this.closed && this.units > this.bound;
  }

  /** Resolves when the queue is back under its bound (or the stream has gone). */
  whenDrained(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((r) => this.drained.push(r));
  }

  /** The next event; "idle" after `idleMs` with none (a keepalive is due); undefined once closed. */
  async next(idleMs: number): Promise<T | "idle" | undefined> {
    while (!this.closed) {
      if (this.queue.length > 0) {
        const e = this.queue.shift()!;
        this.units -= this.size(e);
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

  /** Everything queued, at once (a polled reader's take); the producer may go on. */
  drain(): T[] {
    const all = this.queue.splice(0);
    this.units = 0;
    for (const r of this.drained.splice(0)) r();
    return all;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.units = 0;
    this.wake?.();
    for (const r of this.drained.splice(0)) r();
    this.onClose(this);
  }
}
