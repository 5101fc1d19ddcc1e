/**
 * Framing of the agent protocol (docs/protocol.md): every frame is
 * u32 BE header length, u32 BE payload length, a JSON header, a payload.
 */
import { CorralError } from "../core/errors.js";

export const MAX_HEADER = 65536;
export const MAX_PAYLOAD = 1024 * 1024;
export const CHUNK = 64 * 1024;

export type Header = { readonly [k: string]: unknown };

export interface Frame {
  readonly header: Header;
  readonly payload: Buffer;
}

const EMPTY = Buffer.alloc(0);

export function encodeFrame(header: Header, payload: Buffer = EMPTY): Buffer {
  const h = Buffer.from(JSON.stringify(header), "utf8");
  // The caller's to fix (an argv or env too large for one frame): a 400 with a code, not `internal` (issue 18).
  if (h.length > MAX_HEADER) {
    throw new CorralError(
      "request_too_large",
      `the ${String(header["op"] ?? "request")} request is ${h.length} bytes of argv, env and paths; the agent protocol takes at most ${MAX_HEADER} in one (pass large data on stdin or as a file)`,
      400,
    );
  }
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const prefix = Buffer.allocUnsafe(8);
  prefix.writeUInt32BE(h.length, 0);
  prefix.writeUInt32BE(payload.length, 4);
  return payload.length ? Buffer.concat([prefix, h, payload]) : Buffer.concat([prefix, h]);
}

export class ProtocolError extends Error {}

/**
 * Incremental decoder: feed it socket chunks, it yields whole frames. Keeps
 * a list of chunks and concatenates only what one frame needs, so a 1 MiB
 * payload arriving in 64 KiB reads is not copied over and over.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Frame[] = [];
    for (;;) {
      if (this.buffered < 8) break;
      const prefix = this.peek(8);
      const hlen = prefix.readUInt32BE(0);
      const plen = prefix.readUInt32BE(4);
      if (hlen < 2 || hlen > MAX_HEADER || plen > MAX_PAYLOAD) {
        throw new ProtocolError(`bad frame lengths header=${hlen} payload=${plen}`);
      }
      if (this.buffered < 8 + hlen + plen) break;
      const whole = this.take(8 + hlen + plen);
      let header: unknown;
      try {
        header = JSON.parse(whole.toString("utf8", 8, 8 + hlen));
      } catch {
        throw new ProtocolError("frame header is not JSON");
      }
      if (typeof header !== "object" || header === null || Array.isArray(header)) {
        throw new ProtocolError("frame header is not a JSON object");
      }
      out.push({ header: header as Header, payload: whole.subarray(8 + hlen) });
    }
    return out;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const merged = Buffer.concat(this.chunks);
    this.chunks = [merged];
    return merged.subarray(0, n);
  }

  private take(n: number): Buffer {
    let first = this.chunks[0]!;
    if (first.length < n) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}
