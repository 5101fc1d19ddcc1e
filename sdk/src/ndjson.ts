/**
 * Splits a byte stream into lines however the chunks fall: a line (or a
 * UTF-8 character) cut across two chunks comes out whole. `\r\n` is
 * accepted; empty lines are dropped.
 */
export class LineSplitter {
  private readonly decoder = new TextDecoder();
  private rest = "";

  /** The lines this chunk completes. */
  push(chunk: Uint8Array): string[] {
    this.rest += this.decoder.decode(chunk, { stream: true });
    const parts = this.rest.split("\n");
    this.rest = parts.pop() ?? "";
    return clean(parts);
  }

  /** The last line, if the stream did not end with a newline. */
  end(): string[] {
    const last = this.rest + this.decoder.decode();
    this.rest = "";
    return clean([last]);
  }
}

function clean(lines: string[]): string[] {
  return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l)).filter((l) => l.trim() !== "");
}

/** Each JSON value of an NDJSON stream, as soon as its line is complete. */
export async function* readNdjson(body: AsyncIterable<Uint8Array>): AsyncGenerator<unknown> {
  const lines = new LineSplitter();
  for await (const chunk of body) {
    for (const line of lines.push(chunk)) yield parseLine(line);
  }
  for (const line of lines.end()) yield parseLine(line);
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch (e) {
    throw new SyntaxError(`invalid NDJSON line: ${line.slice(0, 200)}`, { cause: e });
  }
}
