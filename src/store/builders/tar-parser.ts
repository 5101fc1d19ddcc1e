import { CorralError } from "../../core/errors.js";

/** A tar archive that is corrupt, truncated or uses a feature corral refuses. */
export class TarFormatError extends CorralError {
  constructor(message: string) {
    super("invalid_archive", message, 400);
  }
}

export type TarEntryType = "file" | "hardlink" | "symlink" | "chardev" | "blockdev" | "directory" | "fifo";

export interface TarEntry {
  /** The member name as written (PAX and GNU long names applied). */
  readonly name: string;
  readonly type: TarEntryType;
  /** Target of a symlink or hard link. */
  readonly linkname: string;
  readonly size: number;
  readonly mode: number;
  /** Offset of the member's data in the (uncompressed) stream. */
  readonly dataOffset: number;
}

const BLOCK = 512;
const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "5": "directory",
  "6": "fifo",
};
/** Metadata entries whose data is read here; capped so a header cannot ask for gigabytes. */
const META_MAX = 1 << 20;

/**
 * A streaming tar reader (ustar, GNU long names, PAX) that only looks at
 * headers: push the archive's bytes in any chunking, each member is reported
 * as its header is complete. Anything GNU tar could read differently from
 * this parser is refused rather than guessed (sparse files, data on entries
 * that carry none, a PAX path next to a GNU long name), because the caller
 * validates names here and lets GNU tar extract the same bytes.
 */
export class TarParser {
  private pending: Buffer = Buffer.alloc(0);
  private offset = 0;
  /** Bytes of member data (plus padding) still to pass over. */
  private skip = 0;
  /** Data of a metadata member being collected (PAX or GNU long name). */
  private meta: { kind: string; need: number; chunks: Buffer[]; padded: number } | undefined;
  private pax: Map<string, string> = new Map();
  private longName: string | undefined;
  private longLink: string | undefined;
  private ended = false;

  constructor(private readonly onEntry: (e: TarEntry) => void) {}

  push(chunk: Buffer): void {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let pos = 0;
    while (pos < buf.length && !this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - pos);
        this.skip -= n;
        pos += n;
        continue;
      }
      if (this.meta) {
        const n = Math.min(this.meta.padded, buf.length - pos);
        const take = Math.min(n, this.meta.need);
        if (take > 0) this.meta.chunks.push(buf.subarray(pos, pos + take));
        this.meta.need -= take;
        this.meta.padded -= n;
        pos += n;
        if (this.meta.padded === 0) this.finishMeta();
        continue;
      }
      if (buf.length - pos < BLOCK) break;
      this.header(buf.subarray(pos, pos + BLOCK), this.offset + pos);
      pos += BLOCK;
    }
    this.offset += pos;
    if (this.ended) this.offset += buf.length - pos; // whatever follows the end marker is padding
    this.pending = this.ended ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
  }

  /** Call at the end of the stream: throws when the archive stopped early. */
  end(): void {
    if (!this.ended) {
      throw new TarFormatError(`the tar archive is truncated (it ends at byte ${this.offset + this.pending.length} without an end-of-archive marker)`);
    }
  }

  private header(h: Buffer, at: number): void {
    if (h.every((b) => b === 0)) {
      if (this.meta || this.longName !== undefined || this.longLink !== undefined || this.pax.size) {
        throw new TarFormatError(`tar end marker at byte ${at} follows an extended header with no member`);
      }
      this.ended = true;
      return;
    }
    checkChecksum(h, at);
    const typeflag = String.fromCharCode(h[156]!);
    const magic = h.subarray(257, 265).toString("latin1");
    let name = cString(h, 0, 100);
    // POSIX ustar splits long names into prefix/name; GNU's magic has no prefix field.
    if (magic === "ustar\u000000") {
      const prefix = cString(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    const size = numeric(h, 124, 12, at);
    if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K") {
      if (size > META_MAX) throw new TarFormatError(`tar extended header at byte ${at} is too large (${size} bytes)`);
      this.meta = { kind: typeflag, need: size, chunks: [], padded: roundUp(size) };
      if (size === 0) this.finishMeta();
      return;
    }
    const type = TYPES[typeflag];
    if (!type) throw new TarFormatError(`unsupported tar entry type "${printable(typeflag)}" at byte ${at} (sparse, multi-volume and dump entries are refused)`);
    if (this.longName !== undefined && this.pax.has("path")) throw new TarFormatError(`tar member at byte ${at} has both a PAX path and a GNU long name`);
    if (this.longLink !== undefined && this.pax.has("linkpath")) throw new TarFormatError(`tar member at byte ${at} has both a PAX linkpath and a GNU long link`);
    const paxSize = this.pax.get("size");
    const realSize = paxSize === undefined ? size : Number(paxSize);
    if (!Number.isSafeInteger(realSize) || realSize < 0) throw new TarFormatError(`tar member at byte ${at} has an invalid size`);
    if (type !== "file" && realSize !== 0) throw new TarFormatError(`tar ${type} member at byte ${at} carries ${realSize} bytes of data`);
    const entry: TarEntry = {
      name: utf8(this.pax.get("path") ?? this.longName ?? name, at),
      type,
      linkname: utf8(this.pax.get("linkpath") ?? this.longLink ?? cString(h, 157, 100), at),
      size: realSize,
      mode: numeric(h, 100, 8, at),
      dataOffset: at + BLOCK,
    };
    this.pax = new Map();
    this.longName = undefined;
    this.longLink = undefined;
    this.skip = roundUp(realSize);
    this.onEntry(entry);
  }

  private finishMeta(): void {
    const m = this.meta!;
    this.meta = undefined;
    const data = Buffer.concat(m.chunks);
    if (m.kind === "L") this.longName = cString(data, 0, data.length);
    else if (m.kind === "K") this.longLink = cString(data, 0, data.length);
    else {
      const records = parsePax(data);
      for (const key of records.keys()) {
        // GNU tar takes a sparse file's real name from GNU.sparse.name: a second name this parser would not check.
        if (key.startsWith("GNU.sparse.")) throw new TarFormatError("sparse files in tar archives are not supported");
        if (m.kind === "g" && (key === "path" || key === "linkpath" || key === "size")) {
          throw new TarFormatError(`a global PAX header may not set ${key}`);
        }
      }
      if (m.kind === "x") for (const [k, v] of records) this.pax.set(k, v);
    }
  }
}

/** PAX records: "<len> <key>=<value>\n", len counting the whole record; values as latin1 (raw bytes). */
export function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    const len = Number(data.subarray(pos, space).toString("latin1"));
    if (space < 0 || !Number.isInteger(len) || len <= space - pos || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new TarFormatError("malformed PAX extended header");
    }
    const record = data.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError("malformed PAX record");
    const value = record.subarray(eq + 1);
    if (value.includes(0)) throw new TarFormatError("a PAX record holds a NUL byte");
    out.set(record.subarray(0, eq).toString("latin1"), value.toString("latin1"));
    pos += len;
  }
  return out;
}

function checkChecksum(h: Buffer, at: number): void {
  const stored = cString(h, 148, 8).trim();
  if (!/^[0-7]+$/.test(stored)) throw new TarFormatError(`not a tar header at byte ${at} (the archive is corrupt or not a tar file)`);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const want = parseInt(stored, 8);
  if (want !== unsigned && want !== signed) throw new TarFormatError(`bad tar header checksum at byte ${at} (the archive is corrupt)`);
}

/** An octal field, or GNU's base-256 form (high bit set) for large values. */
function numeric(h: Buffer, off: number, len: number, at: number): number {
  const f = h.subarray(off, off + len);
  if (f[0]! & 0x80) {
    if (f[0] === 0xff) throw new TarFormatError(`negative number in tar header at byte ${at}`);
    let v = f[0]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + f[i]!;
    if (!Number.isSafeInteger(v)) throw new TarFormatError(`number too large in tar header at byte ${at}`);
    return v;
  }
  const s = cString(f, 0, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`invalid number "${printable(s)}" in tar header at byte ${at}`);
  return parseInt(s, 8);
}

function cString(b: Buffer, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const nul = f.indexOf(0);
  return f.subarray(0, nul < 0 ? f.length : nul).toString("latin1");
}

/** Header fields are bytes; names must be UTF-8 so the checks and the file system agree. */
function utf8(latin1: string, at: number): string {
  const bytes = Buffer.from(latin1, "latin1");
  const s = bytes.toString("utf8");
  if (!Buffer.from(s, "utf8").equals(bytes)) throw new TarFormatError(`tar member name at byte ${at} is not UTF-8`);
  return s;
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
