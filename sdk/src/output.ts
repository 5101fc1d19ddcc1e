/**
 * One output stream of a command (stdout or stderr) arriving as base64
 * chunks: decodes each to bytes and the bytes to text with a streaming
 * decoder, so a UTF-8 character split across two chunks is not mangled.
 */
export class OutputDecoder {
  /** Made with the first chunk: most commands a caller waits on print little or nothing. */
  private decoder: InstanceType<typeof TextDecoder> | undefined;
  private readonly parts: string[] = [];

  /** The text this base64 chunk completes (possibly ""). */
  push(base64: string): string {
    const text = (this.decoder ??= new TextDecoder()).decode(Buffer.from(base64, "base64"), { stream: true });
    if (text) this.parts.push(text);
    return text;
  }

  /** Whatever an incomplete trailing character leaves (U+FFFD), at the end. */
  end(): string {
    if (!this.decoder) return "";
    const text = this.decoder.decode();
    if (text) this.parts.push(text);
    return text;
  }

  /** All the text so far. */
  text(): string {
    return this.parts.join("");
  }
}
