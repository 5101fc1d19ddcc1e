/**
 * One output stream of a command (stdout or stderr) arriving as base64
 * chunks: decodes each to bytes and the bytes to text with a streaming
 * decoder, so a UTF-8 character split across two chunks is not mangled.
 */
export class OutputDecoder {
  private readonly decoder = new TextDecoder();
  private readonly parts: string[] = [];

  /** The text this base64 chunk completes (possibly ""). */
  push(base64: string): string {
    const text = this.decoder.decode(Buffer.from(base64, "base64"), { stream: true });
    if (text) this.parts.push(text);
    return text;
  }

  /** Whatever an incomplete trailing character leaves (U+FFFD), at the end. */
  end(): string {
    const text = this.decoder.decode();
    if (text) this.parts.push(text);
    return text;
  }

  /** All the text so far. */
  text(): string {
    return this.parts.join("");
  }
}
