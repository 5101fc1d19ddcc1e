import { Readable } from "node:stream";
import { InvalidArgumentError } from "../core/errors.js";

/**
 * Flow control of /v1/connect (api/openapi.yaml, `connect`): each request
 * may have WINDOW bytes unacknowledged in each direction; the receiver
 * sends ConnectCredits as it consumes. A slow reader on either side thus
 * pauses the source (the agent's connection, the uploader) instead of
 * filling memory, without holding up the connection's other requests.
 */

/** Bytes a request may have unacknowledged in each direction. */
export const WINDOW = 1024 * 1024;
/** Most payload in one binary frame (the agent's own chunk size). */
export const CHUNK = 64 * 1024;
/** Every outgoing stream of a connection pauses while more than this waits in its socket (a peer not reading at all). */
export const SOCKET_HIGH = 1024 * 1024;
const HEADER = 8;

/** A binary frame: the request id (unsigned 64-bit big-endian), then the payload; none ends the request's bytes. */
export function binaryFrame(id: number, payload?: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(HEADER + (payload?.length ?? 0));
  frame.writeBigUInt64BE(BigInt(id), 0);
  payload?.copy(frame, HEADER);
  return frame;
}

export function parseBinaryFrame(data: Buffer): { id: number; payload: Buffer } | undefined {
  if (data.length < HEADER) return undefined;
  const id = data.readBigUInt64BE(0);
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { id: Number(id), payload: data.subarray(HEADER) };
}

/** What an outgoing stream can be asked to do. */
export interface Source {
  pause(): void;
  resume(): void;
}

/**
 * An outgoing stream's credit: it pauses its source once WINDOW bytes are
 * unacknowledged or the socket holds more than SOCKET_HIGH, and resumes it
 * when both have come down. A source may overshoot by what it had already
 * read (one chunk), never more.
 */
export class Outgoing {
  private sent = 0;
  private credited = 0;
  private paused = false;

  constructor(
    private readonly source: Source,
    private readonly buffered: () => number,
    /** Outgoing streams now paused: the connection looks at them again when its socket drains. */
    private readonly waiting: Set<Outgoing>,
  ) {}

  sentBytes(n: number): void {
    this.sent += n;
    this.check();
  }

  credit(n: number): void {
    this.credited += n;
    this.check();
  }

  check(): void {
    const stop = this.sent - this.credited >= WINDOW || this.buffered() > SOCKET_HIGH;
    if (stop === this.paused) return;
    this.paused = stop;
    if (stop) {
      this.waiting.add(this);
      this.source.pause();
    } else {
      this.waiting.delete(this);
      this.source.resume();
    }
  }

  /** The stream is over: it waits for nothing any more. */
  close(): void {
    this.waiting.delete(this);
  }
}

/**
 * A request's bytes as they come in binary frames, as a Readable for its
 * handler. Credit goes back (`grant`) as the handler consumes, a quarter
 * window at a time; a peer that sends more than its window (plus one
 * frame) is refused.
 */
export class IncomingUpload {
  readonly stream: Readable;
  private received = 0;
  private granted = WINDOW;
  private ended = false;

  constructor(private readonly grant: (bytes: number) => void) {
    this.stream = new Readable({ highWaterMark: CHUNK, read: () => this.maybeGrant() });
    // A handler that failed may leave it unread; its errors are the handler's to report.
    this.stream.on("error", () => {});
  }

  push(payload: Buffer): void {
    if (this.ended) return;
    if (payload.length === 0) {
      this.ended = true;
      this.stream.push(null);
      return;
    }
    this.received += payload.length;
    if (this.received > this.granted + CHUNK) {
      this.ended = true;
      this.stream.destroy(new InvalidArgumentError(`the upload went over its window: at most ${WINDOW} bytes may wait for credit`));
      return;
    }
    this.stream.push(payload);
  }

  /** Not wanted any more (its request was answered, cancelled, or the connection closed). */
  discard(e?: Error): void {
    this.ended = true;
    this.stream.destroy(e);
  }

  private maybeGrant(): void {
    if (this.ended) return;
    const consumed = this.received - this.stream.readableLength;
    const more = consumed + WINDOW - this.granted;
    if (more >= WINDOW / 4) {
      this.granted += more;
      this.grant(more);
    }
  }
}
