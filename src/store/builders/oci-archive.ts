import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash } from "node:crypto";
import { TarFormatError, TarParser, type TarEntry } from "./tar-parser.js";

/** One image layer: where its blob lies in the archive file, and what it must hash to. */
export interface ImageLayer {
  readonly offset: number;
  readonly size: number;
  /** sha256 of the blob as stored (OCI layout only). */
  readonly blobDigest?: string;
  /** sha256 of the uncompressed layer tar (the config's rootfs.diff_ids). */
  readonly diffId?: string;
}

/** What the image config says about running it (kept in the template record). */
export interface ImageConfig {
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
}

export interface ImagePlan {
  readonly format: "docker-archive" | "oci-archive";
  /** The manifest's digest (OCI), or the image id (config digest) of a docker archive, which has no manifest digest. */
  readonly digest: string;
  readonly layers: readonly ImageLayer[];
  readonly config: ImageConfig;
}

const JSON_MAX = 4 << 20;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const INDEX_TYPES = new Set(["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]);

/**
 * Reads an image archive without unpacking it: `docker save`/`podman save`
 * (manifest.json naming layer tars) or an OCI image layout in a tar
 * (oci-layout, index.json, blobs/sha256/...). Every member is located by
 * offset, so layers are later streamed straight out of the archive file.
 */
export async function readImageArchive(file: string): Promise<ImagePlan> {
  const members = await indexTar(file);
  const archive = new ArchiveFiles(file, members);
  if (members.has("oci-layout") && members.has("index.json")) return ociPlan(archive);
  if (members.has("manifest.json")) return dockerPlan(archive);
  throw new TarFormatError("not an image archive: it has neither manifest.json (docker/podman save) nor oci-layout and index.json (OCI layout)");
}

async function dockerPlan(a: ArchiveFiles): Promise<ImagePlan> {
  const manifest = await a.json("manifest.json");
  if (!Array.isArray(manifest) || manifest.length !== 1) {
    throw new TarFormatError(`manifest.json lists ${Array.isArray(manifest) ? manifest.length : "no"} images; corral imports archives holding exactly one`);
  }
  const m = manifest[0] as { Config?: unknown; Layers?: unknown };
  if (typeof m.Config !== "string" || !Array.isArray(m.Layers) || !m.Layers.every((l) => typeof l === "string")) {
    throw new TarFormatError("manifest.json has no Config and Layers");
  }
  const configBytes = await a.read(m.Config);
  const config = parseJson(configBytes, m.Config);
  const diffIds = diffIdsOf(config, m.Layers.length);
  const layers = (m.Layers as string[]).map((name, i) => {
    const e = a.file(name);
    const l: ImageLayer = { offset: e.dataOffset, size: e.size };
    return diffIds[i] ? { ...l, diffId: diffIds[i] } : l;
  });
  return { format: "docker-archive", digest: `sha256:${sha256(configBytes)}`, layers, config: runConfig(config) };
}

async function ociPlan(a: ArchiveFiles): Promise<ImagePlan> {
  const index = (await a.json("index.json")) as { manifests?: Descriptor[] };
  const list = index.manifests ?? [];
  if (list.length !== 1) throw new TarFormatError(`index.json lists ${list.length} images; corral imports archives holding exactly one`);
  let desc = list[0]!;
  if (INDEX_TYPES.has(desc.mediaType ?? "")) {
    const nested = parseJson(await a.blob(desc), "image index") as { manifests?: Descriptor[] };
    const arch = process.arch === "x64" ? "amd64" : process.arch;
    const pick = (nested.manifests ?? []).find((d) => d.platform?.os === "linux" && d.platform.architecture === arch);
    if (!pick) throw new TarFormatError(`the image index has no linux/${arch} image`);
    desc = pick;
  }
  const manifest = parseJson(await a.blob(desc), "manifest") as { config?: Descriptor; layers?: Descriptor[] };
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new TarFormatError("the OCI manifest has no config and layers");
  const config = parseJson(await a.blob(manifest.config), "image config");
  const diffIds = diffIdsOf(config, manifest.layers.length);
  const layers = manifest.layers.map((d, i) => {
    const e = a.file(blobPath(d));
    if (d.size !== undefined && d.size !== e.size) throw new TarFormatError(`layer ${d.digest} is ${e.size} bytes, its descriptor says ${d.size}`);
    const l: ImageLayer = { offset: e.dataOffset, size: e.size, blobDigest: d.digest };
    return diffIds[i] ? { ...l, diffId: diffIds[i] } : l;
  });
  return { format: "oci-archive", digest: desc.digest, layers, config: runConfig(config) };
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: { os?: string; architecture?: string };
}

function blobPath(d: Descriptor): string {
  if (typeof d?.digest !== "string" || !DIGEST.test(d.digest)) throw new TarFormatError(`unsupported or malformed blob digest ${JSON.stringify(d?.digest)} (only sha256 is supported)`);
  return `blobs/sha256/${d.digest.slice(7)}`;
}

function diffIdsOf(config: unknown, count: number): (string | undefined)[] {
  const ids = (config as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
  if (!Array.isArray(ids)) return [];
  if (ids.length !== count) throw new TarFormatError(`the image config lists ${ids.length} layer digests for ${count} layers`);
  return ids.map((d) => (typeof d === "string" && DIGEST.test(d) ? d : undefined));
}

function runConfig(config: unknown): ImageConfig {
  const c = (config as { config?: Record<string, unknown> }).config ?? {};
  const strings = (v: unknown) => (Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : undefined);
  const out: ImageConfig = {};
  const env = strings(c["Env"]);
  const entrypoint = strings(c["Entrypoint"]);
  const cmd = strings(c["Cmd"]);
  if (env) out.env = env;
  if (entrypoint) out.entrypoint = entrypoint;
  if (cmd) out.cmd = cmd;
  if (typeof c["WorkingDir"] === "string" && c["WorkingDir"]) out.workingDir = c["WorkingDir"];
  return out;
}

/** Members of the archive by normalized name. */
async function indexTar(file: string): Promise<Map<string, TarEntry>> {
  const members = new Map<string, TarEntry>();
  const parser = new TarParser((e) => members.set(path.posix.normalize(e.name).replace(/^(\.\/)+|\/+$/g, ""), e));
  for await (const chunk of fs.createReadStream(file)) parser.push(chunk as Buffer);
  parser.end();
  return members;
}

class ArchiveFiles {
  constructor(
    private readonly archivePath: string,
    private readonly members: Map<string, TarEntry>,
  ) {}

  /** A regular file member, following the symlinks docker archives use for repeated layers. */
  file(name: string): TarEntry {
    let p = path.posix.normalize(name).replace(/^(\.\/)+/, "");
    for (let hops = 0; hops < 8; hops++) {
      const e = this.members.get(p);
      if (!e) break;
      if (e.type === "file") return e;
      if (e.type !== "symlink") break;
      p = path.posix.normalize(path.posix.join(path.posix.dirname(p), e.linkname));
      if (p.startsWith("../") || p.startsWith("/")) break;
    }
    throw new TarFormatError(`the archive has no file ${name}`);
  }

  async read(name: string): Promise<Buffer> {
    const e = this.file(name);
    if (e.size > JSON_MAX) throw new TarFormatError(`${name} is too large for an image metadata file (${e.size} bytes)`);
    const h = await fsp.open(this.archivePath);
    try {
      const buf = Buffer.alloc(e.size);
      const { bytesRead } = await h.read(buf, 0, e.size, e.dataOffset);
      if (bytesRead !== e.size) throw new TarFormatError(`${name} is truncated`);
      return buf;
    } finally {
      await h.close();
    }
  }

  async json(name: string): Promise<unknown> {
    return parseJson(await this.read(name), name);
  }

  /** A small blob, checked against its digest. */
  async blob(d: Descriptor): Promise<Buffer> {
    const data = await this.read(blobPath(d));
    if (`sha256:${sha256(data)}` !== d.digest) throw new TarFormatError(`blob ${d.digest} does not match its digest (the archive is corrupt)`);
    return data;
  }
}

function parseJson(buf: Buffer, what: string): unknown {
  try {
    return JSON.parse(buf.toString("utf8"));
  } catch {
    throw new TarFormatError(`${what} in the archive is not valid JSON`);
  }
}

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}
