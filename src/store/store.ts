import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes, createHash } from "node:crypto";
import { ConflictError, CorralError, NotFoundError } from "../core/errors.js";
import { parseSpec } from "../core/index.js";
import type { BaseContext, ProgressFn, TemplateBuilder } from "./builders/builder.js";
import { busyboxBuilder } from "./builders/busybox.js";
import { debianBuilder, debianNixBuilder } from "./builders/debian.js";
import { e2bBaseBuilder } from "./builders/e2b-base.js";
import { buildOciTemplate } from "./builders/oci.js";
import type { ImageConfig } from "./builders/oci-archive.js";
import { diskUsage, finalizeTree } from "./tree.js";
import { withLock } from "./lock.js";
import { pidAlive } from "../host/process.js";

export interface LayerRecord {
  readonly digest: string;
  readonly bytes: number;
  readonly files: number;
  readonly source: string;
  readonly createdAt: string;
  /** Host uid that owns what is root inside a sandbox. */
  readonly uidBase: number;
}

export interface TemplateRecord {
  readonly name: string;
  /** Layer digests, bottom first. */
  readonly layers: readonly string[];
  readonly source: string;
  readonly createdAt: string;
  /** Host Nix store paths the sandbox sees at /nix/store (templates built with --nix). */
  readonly nix?: NixPart;
  /**
   * What an imported image's config says about running it (Env, Entrypoint,
   * Cmd, WorkingDir). Kept for reference; sandboxes do not apply it yet.
   */
  readonly image?: ImageConfig;
}

export interface NixPart {
  /** The closure of `outputs` (nix-store -qR), sorted: what an isolated sandbox sees. */
  readonly storePaths: readonly string[];
  /** Closure members that are symlinks: the layer holds them as they are (a bind mount would follow them). */
  readonly symlinks: readonly string[];
  /** What nix-build printed: the profile's bin/ links point into these. */
  readonly outputs: readonly string[];
  /** Mount the host's whole /nix/store (read-only) instead of the closure. */
  readonly shareHostStore: boolean;
  /** Digest of the layer holding /nix/store's mount points and the profile. */
  readonly layer: string;
}

/**
 * What a backend mounts for a Nix template. A container: `dir` at
 * /nix/store, then each of `paths` at itself. A VM: the closure as one
 * image (store/nix/closure-image.ts), or the host's store shared in.
 */
export interface NixStoreView {
  readonly dir: string;
  readonly paths: readonly string[];
  /** The whole host store (read-only), not the closure. */
  readonly hostStore: boolean;
  /** The template's Nix layer and its whole closure (symlinks included): a VM's store image. */
  readonly closure: { readonly layer: string; readonly storePaths: readonly string[] };
  /** A private writable layer over it (`nix: { writable: true }`): the runtime adds Nix's database as a layer. */
  readonly writable?: boolean;
}

/** The host's Nix store, where every store path lives. */
export const HOST_NIX_STORE = "/nix/store";

/** How recent a layer may be and still be collected (see gc). */
export const GC_GRACE_MS = 60_000;

export const BUILTIN_TEMPLATES: ReadonlyMap<string, TemplateBuilder> = new Map([
  [busyboxBuilder.name, busyboxBuilder],
  [debianBuilder.name, debianBuilder],
  [debianNixBuilder.name, debianNixBuilder],
  [e2bBaseBuilder.name, e2bBaseBuilder],
]);

/**
 * The content-addressed store under `<state>/store`:
 *
 *   layers/<sha256>/        a root filesystem, immutable once renamed here
 *   layers/<sha256>.json    its LayerRecord
 *   templates/<name>.json   a TemplateRecord naming its layers
 *   tmp/                    builds in progress (removed on failure and on open)
 *   locks/                  one build of a template at a time
 *   nix-roots/<name>/       GC roots keeping a Nix template's outputs in the host store
 *
 * Layers are owned by the sandbox uid range (shifted by `uidBase`) so they
 * can be mounted read-only into every sandbox as they are.
 */
export class Store {
  readonly layersDir: string;
  readonly templatesDir: string;
  readonly tmpDir: string;
  readonly locksDir: string;
  /** Per template, indirect Nix GC roots for its outputs (see nix/nix-template.ts). */
  readonly nixRootsDir: string;

  constructor(
    readonly dir: string,
    readonly uidBase: number,
  ) {
    this.layersDir = path.join(dir, "layers");
    this.templatesDir = path.join(dir, "templates");
    this.tmpDir = path.join(dir, "tmp");
    this.locksDir = path.join(dir, "locks");
    this.nixRootsDir = path.join(dir, "nix-roots");
  }

  async init(): Promise<void> {
    for (const d of [this.layersDir, this.templatesDir, this.tmpDir, this.locksDir]) {
      await fsp.mkdir(d, { recursive: true, mode: 0o700 });
    }
    // Sandboxes traverse the layer directories from their own uid range.
    await fsp.chmod(this.dir, 0o711);
    await fsp.chmod(this.layersDir, 0o711);
  }

  /**
   * A fresh path under tmp/ for work in progress, named with this process's
   * pid so that reclaimTmp() can tell a crashed process's leftovers from
   * another live process's build.
   */
  workPath(kind: string): string {
    return path.join(this.tmpDir, `${kind}-p${process.pid}-${randomBytes(6).toString("hex")}`);
  }

  /**
   * Removes what crashed processes left in tmp/: entries whose pid is not
   * alive (and, from before pids were recorded, entries older than a day).
   * Returns their names.
   */
  async reclaimTmp(): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await fsp.readdir(this.tmpDir).catch(() => [] as string[])) {
      const pid = /-p(\d+)-[0-9a-f]{12}(\.tar)?$/.exec(name)?.[1];
      const p = path.join(this.tmpDir, name);
      if (pid !== undefined) {
        if (pidAlive(Number(pid))) continue;
      } else {
        const st = await fsp.lstat(p).catch(() => undefined);
        if (!st || Date.now() - st.mtimeMs < 24 * 3600_000) continue;
      }
      await fsp.rm(p, { recursive: true, force: true });
      removed.push(name);
    }
    return removed;
  }

  layerDir(digest: string): string {
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new CorralError("invalid_digest", `not a layer digest: ${digest}`, 400);
    return path.join(this.layersDir, digest);
  }

  async layer(digest: string): Promise<LayerRecord | undefined> {
    return readJson<LayerRecord>(`${this.layerDir(digest)}.json`);
  }

  async template(name: string): Promise<TemplateRecord | undefined> {
    return readJson<TemplateRecord>(path.join(this.templatesDir, `${name}.json`));
  }

  async templates(): Promise<TemplateRecord[]> {
    const names = await fsp.readdir(this.templatesDir).catch(() => []);
    const out: TemplateRecord[] = [];
    for (const n of names.filter((n) => n.endsWith(".json")).sort()) {
      const t = await readJson<TemplateRecord>(path.join(this.templatesDir, n));
      if (t) out.push(t);
    }
    return out;
  }

  /** Layer directories of a template, bottom first. */
  async templateLayerDirs(name: string): Promise<string[]> {
    const t = await this.template(name);
    if (!t) throw new NotFoundError("template", name);
    return t.layers.map((d) => this.layerDir(d));
  }

  /**
   * Returns the template, building it first if it is a built-in one that is
   * not in the store yet (a built-in over another, its base first: the
   * template is the base's layers plus its own).
   */
  async ensureTemplate(name: string, progress: ProgressFn = () => {}): Promise<TemplateRecord> {
    const existing = await this.template(name);
    if (existing) return existing;
    const builder = BUILTIN_TEMPLATES.get(name);
    if (!builder) {
      throw new NotFoundError("template", name);
    }
    const base = builder.base === undefined ? undefined : await this.ensureTemplate(builder.base, progress);
    return this.withTemplateLock(name, async () => {
      const again = await this.template(name);
      if (again) return again;
      const layer = await this.buildLayer(builder, progress, base && { layers: base.layers.map((d) => this.layerDir(d)), uidBase: this.uidBase });
      return this.registerTemplate(name, [...(base?.layers ?? []), layer.digest], base ? `${layer.source} over ${base.source}` : layer.source);
    });
  }

  /** One build (or removal) of a template name at a time, across processes. */
  withTemplateLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return withLock(this.templateLock(name), fn);
  }

  /**
   * Makes template `name` of an image archive (docker/podman save or an OCI
   * layout tar), one store layer per image layer. The name must be free and
   * not a built-in's; nothing is registered unless every layer got in.
   */
  async importOci(name: string, archive: string, progress: ProgressFn = () => {}, label = path.basename(archive)): Promise<TemplateRecord> {
    await this.checkImportName(name);
    return withLock(this.templateLock(name), async () => {
      await this.checkImportName(name);
      return buildOciTemplate(this, name, archive, progress, label);
    });
  }

  /** Throws unless `name` is a valid template name, not a built-in's, and not taken. */
  async checkImportName(name: string): Promise<void> {
    parseSpec({ template: name });
    if (BUILTIN_TEMPLATES.has(name)) throw new ConflictError(`"${name}" is the name of a built-in template; choose another`);
    if (await this.template(name)) throw new ConflictError(`a template named "${name}" already exists (remove it first with corral template rm)`);
  }

  private templateLock(name: string): string {
    return path.join(this.locksDir, `template-${name}.lock`);
  }

  /** Runs a builder into a fresh directory and moves the result into the store. */
  async buildLayer(builder: TemplateBuilder, progress: ProgressFn, base?: BaseContext): Promise<LayerRecord> {
    const work = this.workPath(`build-${builder.name}`);
    await fsp.mkdir(work, { mode: 0o755 });
    try {
      const { source } = await builder.build(work, progress, base);
      return await this.addLayer(work, source, progress);
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  }

  /**
   * Takes ownership of a built root filesystem: shifts owners, computes its
   * digest and renames it into place (a no-op when that digest is stored).
   * `fromUidBase`: the tree was written by a sandbox root at that host uid
   * (its own range, a commit): its owners move to the store's range.
   */
  async addLayer(dir: string, source: string, progress: ProgressFn = () => {}, fromUidBase?: number): Promise<LayerRecord> {
    progress({ phase: "finalize", message: "hashing and shifting ownership", percent: 92 });
    const summary = await finalizeTree(dir, this.uidBase, fromUidBase);
    const target = this.layerDir(summary.digest);
    const existing = await this.layer(summary.digest);
    if (existing) return existing;
    const record: LayerRecord = {
      digest: summary.digest,
      bytes: summary.bytes,
      files: summary.files,
      source,
      createdAt: new Date().toISOString(),
      uidBase: this.uidBase,
    };
    await fsp.rm(target, { recursive: true, force: true }); // a half-moved leftover without its record
    await fsp.rename(dir, target);
    await writeJsonAtomic(`${target}.json`, record);
    progress({ phase: "done", message: `layer ${summary.digest.slice(0, 12)}`, percent: 100 });
    return record;
  }

  async registerTemplate(
    name: string,
    layers: readonly string[],
    source: string,
    extra: { readonly nix?: NixPart | undefined; readonly image?: ImageConfig | undefined } = {},
  ): Promise<TemplateRecord> {
    const record: TemplateRecord = {
      name,
      layers,
      source,
      createdAt: new Date().toISOString(),
      ...(extra.nix ? { nix: extra.nix } : {}),
      ...(extra.image ? { image: extra.image } : {}),
    };
    await writeJsonAtomic(path.join(this.templatesDir, `${name}.json`), record);
    return record;
  }

  /**
   * Puts a host file (the agent binary) into the store by content and
   * returns the directory holding it, read-only, named by its hash.
   */
  async addBinary(file: string, name: string): Promise<string> {
    const data = await fsp.readFile(file);
    const digest = createHash("sha256").update(data).digest("hex");
    const dir = path.join(this.dir, "bin", digest.slice(0, 32));
    const target = path.join(dir, name);
    if (await fsp.stat(target).then((s) => s.size === data.length, () => false)) return dir;
    await fsp.mkdir(path.join(this.dir, "bin"), { recursive: true, mode: 0o711 });
    const tmp = this.workPath("bin");
    await fsp.mkdir(tmp, { mode: 0o755 });
    await fsp.writeFile(path.join(tmp, name), data, { mode: 0o755 });
    await fsp.rename(tmp, dir).catch(async (e: NodeJS.ErrnoException) => {
      await fsp.rm(tmp, { recursive: true, force: true });
      if (e.code !== "ENOTEMPTY" && e.code !== "EEXIST") throw e;
    });
    return dir;
  }

  /** Every stored layer with its record (digest order). */
  async layers(): Promise<LayerRecord[]> {
    const out: LayerRecord[] = [];
    for (const n of (await fsp.readdir(this.layersDir)).filter((n) => /^[0-9a-f]{64}\.json$/.test(n)).sort()) {
      const l = await this.layer(n.slice(0, 64));
      if (l) out.push(l);
    }
    return out;
  }

  /**
   * Removes layers no template names and no sandbox stands on (`inUse`),
   * and layer directories left without a record by a crash. Templates go
   * first: a layer is removed only after nothing can start on it.
   */
  async gc(inUse: ReadonlySet<string>, graceMs = GC_GRACE_MS): Promise<{ removed: string[]; freedBytes: number }> {
    const named = new Set((await this.templates()).flatMap((t) => t.layers));
    const removed: string[] = [];
    let freedBytes = 0;
    for (const name of await fsp.readdir(this.layersDir)) {
      const digest = name.slice(0, 64);
      if (!/^[0-9a-f]{64}(\.json)?$/.test(name) || named.has(digest) || inUse.has(digest) || removed.includes(digest)) continue;
      const dir = this.layerDir(digest);
      // A build renames its layer in a moment before registering the template
      // that names it: leave anything that arrived in the last minute.
      const st = await fsp.stat(dir).catch(() => undefined);
      if (st && Date.now() - st.ctimeMs < graceMs) continue;
      freedBytes += await diskUsage(dir).catch(() => 0);
      await fsp.rm(`${dir}.json`, { force: true }); // the record first: a half-removed layer is then an orphan dir, removed next time
      await fsp.rm(dir, { recursive: true, force: true });
      removed.push(digest);
    }
    return { removed, freedBytes };
  }

  async removeTemplate(name: string): Promise<void> {
    const file = path.join(this.templatesDir, `${name}.json`);
    if (!(await this.template(name))) throw new NotFoundError("template", name);
    await fsp.rm(file);
    // Its outputs may now be collected by the host's Nix GC, unless running
    // processes still use them (Nix keeps paths open in /proc as runtime roots).
    await fsp.rm(path.join(this.nixRootsDir, name), { recursive: true, force: true });
  }

  /** Where a sandbox of this template gets its /nix/store from, if it has one. */
  nixStoreView(t: TemplateRecord): NixStoreView | undefined {
    if (!t.nix) return undefined;
    const closure = { layer: t.nix.layer, storePaths: t.nix.storePaths };
    if (t.nix.shareHostStore) return { dir: HOST_NIX_STORE, paths: [], hostStore: true, closure };
    const links = new Set(t.nix.symlinks);
    return { dir: path.join(this.layerDir(t.nix.layer), "nix/store"), paths: t.nix.storePaths.filter((p) => !links.has(p)), hostStore: false, closure };
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, "utf8")) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
  await fsp.rename(tmp, file);
}
