/**
 * Bytes over /v1/connect (api/openapi.yaml, `connect`): binary frames of
 * the request id (8 bytes, big-endian) and at most CHUNK bytes; an empty
 * one ends a request's bytes. Each direction may have WINDOW bytes
 * unacknowledged: the daemon grants an upload more with ConnectCredits as
 * its handler consumes, and this side grants the daemon more as its
 * `onBytes` consumer settles.
 */

/** Most payload in one binary frame. */
export const CHUNK = 64 * 1024;

export function binaryFrame(id: number, payload?: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(8 + (payload?.length ?? 0));
  frame.writeBigUInt64BE(BigInt(id), 0);
  if (payload) frame.set(payload, 8);
  return frame;
}

export function parseBinaryFrame(data: Buffer): { id: number; payload: Buffer } | undefined {
  if (data.length < 8) return undefined;
  const id = data.readBigUInt64BE(0);
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { id: Number(id), payload: data.subarray(8) };
}

/**
 * The bytes of a request going to the daemon (a terminal's input, a
 * command's stdin): written in frames of at most CHUNK, waiting while the
 * window is used up, in the order written.
 */
export class UploadSink {
  private sent = 0;
  private granted: number;
  private waiting: (() => void)[] = [];
  private ended = false;
  private failure: Error | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly id: number,
    window: number,
    private readonly send: (frame: Buffer) => void,
  ) {
    this.granted = window;
  }

  /** Sends `data` (after what was written before); resolves once it is on its way. */
  write(data: Uint8Array): Promise<void> {
    const p = this.chain.then(async () => {
      for (let o = 0; o < data.length; o += CHUNK) {
        const piece = data.subarray(o, o + CHUNK);
        while (!this.failure && this.sent + piece.length > this.granted) await new Promise<void>((r) => this.waiting.push(r));
        if (this.failure) throw this.failure;
        if (this.ended) throw new Error("the upload has ended");
        this.send(binaryFrame(this.id, piece));
        this.sent += piece.length;
      }
    });
    this.chain = p.catch(() => {});
    return p;
  }

  /** The last bytes: an empty frame, after what was written before. */
  end(): Promise<void> {
    const p = this.chain.then(() => {
      if (this.ended || this.failure) return;
      this.ended = true;
      this.send(binaryFrame(this.id));
    });
    this.chain = p.catch(() => {});
    return p;
  }

  credit(bytes: number): void {
    this.granted += bytes;
    for (const w of this.waiting.splice(0)) w();
  }

  /** The request is over: writes still waiting fail with `e`. */
  fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiting.splice(0)) w();
  }
}
