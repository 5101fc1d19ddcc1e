import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash } from "node:crypto";
import { createGunzip } from "node:zlib";
import { PassThrough, Transform } from "node:stream";
import { extractTar } from "../../host/tar.js";
import { makeWhiteouts, markOpaque } from "../../host/overlay-marks.js";
import { LayerRules, type WhiteoutPlan } from "./layer-rules.js";
import { TarFormatError, TarParser } from "./tar-parser.js";
import type { ImageLayer } from "./oci-archive.js";

/**
 * Streams one layer blob out of the archive into `dir` (empty): decompress
 * (gzip or none), check every member (LayerRules) before GNU tar gets the
 * bytes, hash blob and content against the image's digests, then turn the
 * OCI whiteout markers into overlayfs ones. `onBytes` counts blob bytes
 * read. Returns the digest of the uncompressed layer (its diff id).
 */
export async function unpackLayer(
  archive: string,
  layer: ImageLayer,
  dir: string,
  onBytes: (n: number) => void,
): Promise<{ diffId: string; whiteouts: WhiteoutPlan }> {
  if (layer.size === 0) throw new TarFormatError("an image layer blob is empty");
  const blobHash = createHash("sha256");
  const diffHash = createHash("sha256");
  const rules = new LayerRules();
  const parser = new TarParser((e) => rules.check(e));

  const raw = fs.createReadStream(archive, { start: layer.offset, end: layer.offset + layer.size - 1 });
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      blobHash.update(chunk);
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  const decompress = await decompressorFor(archive, layer.offset);
  const checked = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      diffHash.update(chunk);
      try {
        parser.push(chunk); // throws on an unsafe member before its bytes are passed on
      } catch (e) {
        cb(e as Error);
        return;
      }
      cb(null, chunk);
    },
    flush(cb) {
      try {
        parser.end();
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
  try {
    await extractTar(dir, [raw, counted, decompress, checked]);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    if (code.startsWith("Z_") || code.startsWith("ERR_ZLIB")) throw new TarFormatError(`a gzip layer is corrupt or truncated: ${(e as Error).message}`);
    throw e;
  }

  if (layer.blobDigest && `sha256:${blobHash.digest("hex")}` !== layer.blobDigest) {
    throw new TarFormatError(`layer blob ${layer.blobDigest} does not match its digest (the archive is corrupt)`);
  }
  const diffId = `sha256:${diffHash.digest("hex")}`;
  if (layer.diffId && diffId !== layer.diffId) throw new TarFormatError(`layer ${layer.diffId} does not match its content digest ${diffId} (the archive is corrupt)`);
  const plan = rules.plan();
  await applyWhiteouts(dir, plan);
  return { diffId, whiteouts: plan };
}

/** OCI markers out, overlayfs markers in. Parents were checked to be real directories of this layer. */
async function applyWhiteouts(dir: string, plan: WhiteoutPlan): Promise<void> {
  for (const m of plan.markers) await fsp.rm(path.join(dir, m), { force: true });
  const missing: string[] = [];
  for (const w of plan.whiteouts) {
    const p = path.join(dir, w);
    // The layer's own entry at that path wins (it already hides what is below).
    if (!(await fsp.lstat(p).then(() => true, () => false))) missing.push(p);
  }
  await makeWhiteouts(missing);
  await markOpaque(plan.opaqueDirs.map((d) => path.join(dir, d)));
}

async function decompressorFor(archive: string, offset: number): Promise<Transform> {
  const h = await fsp.open(archive);
  const magic = Buffer.alloc(4);
  try {
    await h.read(magic, 0, 4, offset);
  } finally {
    await h.close();
  }
  if (magic[0] === 0x1f && magic[1] === 0x8b) return createGunzip();
  if (magic.readUInt32LE(0) === 0xfd2fb528) {
    throw new TarFormatError("zstd-compressed layers are not supported yet: save the image with gzip or uncompressed layers");
  }
  return new PassThrough();
}
