/**
 * What a terminal session printed, as it comes: tests wait for a pattern
 * to appear after a mark (what they typed last), with a deadline.
 */
export class Screen {
  private text = "";
  private waiters: { re: RegExp; from: number; resolve: (m: RegExpExecArray) => void }[] = [];

  /** Where the next waitFor starts looking: call before typing. */
  mark(): number {
    return this.text.length;
  }

  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    for (const w of [...this.waiters]) {
      const m = w.re.exec(this.text.slice(w.from));
      if (m) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }

  get all(): string {
    return this.text;
  }

  /** Resolves with the first match of `re` in what came after `from`; rejects after `timeoutMs`, quoting the tail. */
  waitFor(re: RegExp, from = 0, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const m = re.exec(this.text.slice(from));
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const w = { re, from, resolve: (x: RegExpExecArray) => (clearTimeout(timer), resolve(x)) };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${re} within ${timeoutMs} ms; the screen ends with ${JSON.stringify(this.text.slice(-400))}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
}
