import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createGunzip } from "node:zlib";
import { pipeline } from "node:stream/promises";
import type { Store, TemplateRecord } from "../store.js";
import type { ProgressFn } from "./builder.js";
import { readImageArchive } from "./oci-archive.js";
import { unpackLayer } from "./oci-layer.js";
import { TarFormatError } from "./tar-parser.js";

/** Layer records made from an image layer carry this source: the layer's diff id. */
export const OCI_LAYER_SOURCE = "oci-layer:";

/**
 * Makes a template of an image archive (docker/podman save, or an OCI
 * layout tar). Each image layer becomes a store layer of its own, stacked
 * in the image's order; a layer already stored (the same tree from any
 * source) is stored once. The template is registered only after every
 * layer is in; on failure the work directory goes and nothing is
 * registered (layers already moved into the store stay until gc).
 * The caller holds the template's lock and has checked the name is free;
 * `label` names the archive in the template's source.
 */
export async function buildOciTemplate(store: Store, name: string, archive: string, progress: ProgressFn, label: string): Promise<TemplateRecord> {
  const work = store.workPath("oci");
  await fsp.mkdir(work, { mode: 0o700 });
  try {
    progress({ phase: "read", message: `reading ${label}`, percent: 0 });
    const tarFile = await plainTar(archive, work);
    const image = await readImageArchive(tarFile);
    if (image.layers.length === 0) throw new TarFormatError("the image has no layers");

    // Layers this store unpacked before, by diff id: not unpacked again.
    const known = new Map<string, string>();
    for (const l of await store.layers()) if (l.source.startsWith(OCI_LAYER_SOURCE)) known.set(l.source.slice(OCI_LAYER_SOURCE.length), l.digest);

    const steps = image.layers.length;
    const totalBytes = image.layers.reduce((a, l) => a + l.size, 0);
    let bytes = 0;
    let lastPercent = -1;
    const report = (step: number, message: string, force = false) => {
      const percent = Math.floor((bytes / totalBytes) * 95);
      if (!force && percent === lastPercent) return;
      lastPercent = percent;
      progress({ phase: "layer", message, percent, step, steps, bytes, totalBytes });
    };

    const digests: string[] = [];
    for (const [i, layer] of image.layers.entries()) {
      const step = i + 1;
      const label = `layer ${step}/${steps}`;
      const stored = layer.diffId ? known.get(layer.diffId) : undefined;
      if (stored && (await store.layer(stored))) {
        bytes += layer.size;
        report(step, `${label}: already stored`, true);
        digests.push(stored);
        continue;
      }
      const dir = path.join(work, `layer-${i}`);
      await fsp.mkdir(dir, { mode: 0o755 });
      report(step, `${label}: unpacking`, true);
      const { diffId } = await unpackLayer(tarFile, layer, dir, (n) => {
        bytes += n;
        report(step, `${label}: unpacking`);
      });
      report(step, `${label}: hashing and shifting ownership`, true);
      const record = await store.addLayer(dir, `${OCI_LAYER_SOURCE}${diffId}`, () => {});
      known.set(diffId, record.digest);
      digests.push(record.digest);
    }
    const source = `oci:${label}@${image.digest}`;
    const t = await store.registerTemplate(name, digests, source, { image: Object.keys(image.config).length ? image.config : undefined });
    progress({ phase: "done", message: `${steps} layer(s)`, percent: 100, step: steps, steps, bytes: totalBytes, totalBytes });
    return t;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** The archive itself, or a gunzipped copy of it in `work` (`podman save | gzip`). */
async function plainTar(archive: string, work: string): Promise<string> {
  const h = await fsp.open(archive).catch((e: NodeJS.ErrnoException) => {
    throw new TarFormatError(`cannot read the image archive ${archive}: ${e.code ?? e.message}`);
  });
  const magic = Buffer.alloc(2);
  try {
    await h.read(magic, 0, 2, 0);
  } finally {
    await h.close();
  }
  if (magic[0] !== 0x1f || magic[1] !== 0x8b) return archive;
  const out = path.join(work, "archive.tar");
  await pipeline(fs.createReadStream(archive), createGunzip(), fs.createWriteStream(out, { mode: 0o600 })).catch((e: Error) => {
    throw new TarFormatError(`the gzip-compressed archive is corrupt or truncated: ${e.message}`);
  });
  return out;
}
