import type { Readable } from "node:stream";

/**
 * Splits a byte stream into lines however the chunks fall: a line (or a
 * UTF-8 character) cut across two chunks comes out whole. `\r\n` is
 * accepted; empty lines are dropped.
 */
export class LineSplitter {
  private rest: Buffer | undefined;

  /** The lines this chunk completes. */
  push(chunk: Uint8Array): string[] {
    // Split on the byte: 0x0A never occurs inside a UTF-8 sequence, so each
    // line is decoded whole (no streaming decoder needed).
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.rest) {
      buf = Buffer.concat([this.rest, buf]);
      this.rest = undefined;
    }
    const lines: string[] = [];
    let start = 0;
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
      lines.push(buf.toString("utf8", start, nl));
      start = nl + 1;
    }
    if (start < buf.length) this.rest = Buffer.from(buf.subarray(start));
    return clean(lines);
  }

  /** The last line, if the stream did not end with a newline. */
  end(): string[] {
    const last = this.rest ? this.rest.toString("utf8") : "";
    this.rest = undefined;
    return clean([last]);
  }
}

function clean(lines: string[]): string[] {
  return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l)).filter((l) => l.trim() !== "");
}

/**
 * Calls `fn` with each JSON value of an NDJSON body as soon as its line is
 * complete, in order; while a promise `fn` returns is pending the body is
 * paused. Resolves at the end of the body; rejects (and destroys the body)
 * on a line that is not JSON, an error from `fn`, or a body cut short.
 * Events, not `for await`: an async iterator over a Node stream costs
 * several promise hops per chunk, a fair part of a short command's answer.
 */
export function eachNdjson(body: Readable, fn: (value: unknown) => unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = new LineSplitter();
    const queue: string[] = [];
    let waiting = false;
    let ended = false;
    let failed = false;
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      body.destroy();
      reject(e);
    };
    const drain = () => {
      while (queue.length > 0 && !failed) {
        let r: unknown;
        try {
          r = fn(parseLine(queue.shift()!));
        } catch (e) {
          return fail(e);
        }
        if (typeof (r as PromiseLike<unknown> | undefined)?.then === "function") {
          waiting = true;
          body.pause();
          (r as PromiseLike<unknown>).then(() => {
            waiting = false;
            body.resume();
            drain();
          }, fail);
          return;
        }
      }
      if (ended && queue.length === 0 && !failed) resolve();
    };
    body.on("data", (c: Buffer) => {
      queue.push(...lines.push(c));
      if (!waiting) drain();
    });
    body.on("end", () => {
      queue.push(...lines.end());
      ended = true;
      if (!waiting) drain();
    });
    body.on("error", fail);
    body.on("aborted", () => fail(Object.assign(new Error("the response was cut short"), { code: "ECONNRESET" })));
  });
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch (e) {
    throw new SyntaxError(`invalid NDJSON line: ${line.slice(0, 200)}`, { cause: e });
  }
}
