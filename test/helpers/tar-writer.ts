// A minimal ustar writer for tests that need archives GNU tar will not
// make (members named "../x", a whiteout next to a file, exact byte layouts).
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

export interface TarMember {
  /** A Buffer for raw bytes (a name that is not UTF-8). */
  name: string | Buffer;
  type?: "file" | "dir" | "symlink" | "hardlink" | "chardev" | "fifo";
  /** Overrides the type's flag byte (e.g. "S" for a GNU sparse member). */
  typeflag?: string;
  data?: Buffer | string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  /** A PAX extended header before the member. */
  pax?: Record<string, string>;
  /** Size written in the header when it should lie about the data. */
  size?: number;
}

const FLAGS = { file: "0", dir: "5", symlink: "2", hardlink: "1", chardev: "3", fifo: "6" } as const;

export function tarArchive(members: readonly TarMember[], opts: { end?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const m of members) {
    const data = Buffer.from(m.data ?? "");
    if (m.pax) {
      const body = Buffer.from(Object.entries(m.pax).map(([k, v]) => paxRecord(k, v)).join(""));
      out.push(header({ name: "PaxHeader", typeflag: "x", size: body.length }), pad(body));
    }
    out.push(
      header({
        name: m.name,
        typeflag: m.typeflag ?? FLAGS[m.type ?? "file"],
        size: m.size ?? data.length,
        mode: m.mode ?? (m.type === "dir" ? 0o755 : 0o644),
        uid: m.uid ?? 0,
        gid: m.gid ?? 0,
        mtime: m.mtime ?? 0,
        linkname: m.linkname ?? "",
      }),
      pad(data),
    );
  }
  if (opts.end !== false) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

interface Header {
  name: string | Buffer;
  typeflag: string;
  size: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
}

function header(h: Header): Buffer {
  const b = Buffer.alloc(512);
  const put = (s: string | Buffer, off: number, len: number) => Buffer.from(s).copy(b, off, 0, len);
  const oct = (n: number, off: number, len: number) => put(n.toString(8).padStart(len - 1, "0"), off, len - 1);
  put(h.name, 0, 100);
  oct(h.mode ?? 0o644, 100, 8);
  oct(h.uid ?? 0, 108, 8);
  oct(h.gid ?? 0, 116, 8);
  oct(h.size, 124, 12);
  oct(h.mtime ?? 0, 136, 12);
  b.fill(0x20, 148, 156);
  put(h.typeflag, 156, 1);
  put(h.linkname ?? "", 157, 100);
  put("ustar\u000000", 257, 8);
  let sum = 0;
  for (const x of b) sum += x;
  put(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148, 8);
  return b;
}

function paxRecord(k: string, v: string): string {
  const body = ` ${k}=${v}\n`;
  let len = body.length + 1;
  while (`${len}${body}`.length !== len) len++;
  return `${len}${body}`;
}

function pad(b: Buffer): Buffer {
  const rest = b.length % 512;
  return rest ? Buffer.concat([b, Buffer.alloc(512 - rest)]) : b;
}

export function sha256(b: Buffer): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

/** A `docker save` style archive (manifest.json, config, layer tars) of the given layer tars. */
export function dockerArchive(layers: readonly Buffer[], config: Record<string, unknown> = {}): Buffer {
  const cfg = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config, rootfs: { type: "layers", diff_ids: layers.map(sha256) } }));
  const cfgName = `${sha256(cfg).slice(7)}.json`;
  const names = layers.map((l) => `${sha256(l).slice(7)}/layer.tar`);
  const manifest = JSON.stringify([{ Config: cfgName, RepoTags: ["test:latest"], Layers: names }]);
  const members: TarMember[] = [{ name: cfgName, data: cfg }];
  layers.forEach((l, i) => members.push({ name: names[i]!, data: l }));
  members.push({ name: "manifest.json", data: manifest });
  return tarArchive(dedupe(members));
}

/** An OCI image layout in a tar, its layers gzip-compressed. */
export function ociArchive(layers: readonly Buffer[], config: Record<string, unknown> = {}): Buffer {
  const blobs = new Map<string, Buffer>();
  const add = (b: Buffer) => {
    const d = sha256(b);
    blobs.set(d, b);
    return { digest: d, size: b.length };
  };
  const cfg = add(Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config, rootfs: { type: "layers", diff_ids: layers.map(sha256) } })));
  const layerDescs = layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...add(gzipSync(l)) }));
  const manifest = add(
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg }, layers: layerDescs })),
  );
  const index = { schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest }] };
  const members: TarMember[] = [
    { name: "oci-layout", data: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    { name: "index.json", data: JSON.stringify(index) },
    ...[...blobs].map(([d, b]) => ({ name: `blobs/sha256/${d.slice(7)}`, data: b })),
  ];
  return tarArchive(members);
}

function dedupe(members: TarMember[]): TarMember[] {
  const seen = new Set<string>();
  return members.filter((m) => !seen.has(String(m.name)) && seen.add(String(m.name)));
}
