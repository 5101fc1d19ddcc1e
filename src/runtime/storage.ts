import { GC_GRACE_MS } from "../store/store.js";
import { diskUsage as treeBytes } from "../store/tree.js";
import type { RuntimeContext } from "./context.js";
import { snapshotLayers } from "./snapshots.js";

export interface DiskUsage {
  layers: { digest: string; bytes: number; templates: string[]; sandboxes: number }[];
  sandboxes: { id: string; name: string; bytes: number }[];
  sharedBytes: number;
  privateBytes: number;
}

/**
 * Layer digests some sandbox or snapshot stands on: those recorded at its
 * start, or (for rows from before layers were recorded) its template's
 * current ones.
 */
export async function layersInUse(rt: RuntimeContext): Promise<Set<string>> {
  const used = new Set<string>();
  for (const r of rt.rows.stacks()) {
    for (const d of r.layers ?? (await rt.store.template(r.template))?.layers ?? []) used.add(d);
  }
  for (const layers of snapshotLayers(rt)) for (const d of layers) used.add(d);
  return used;
}

/**
 * What the store and the sandboxes use on disk: each layer once (shared by
 * every sandbox on it) and each sandbox's private directory (its writable
 * layer when persistent; an ephemeral one's is tmpfs, in memory).
 */
export async function diskUsage(rt: RuntimeContext): Promise<DiskUsage> {
  const templates = await rt.store.templates();
  const rows = rt.rows.stacks();
  const layers = [];
  for (const l of await rt.store.layers()) {
    layers.push({
      digest: l.digest,
      bytes: await treeBytes(rt.store.layerDir(l.digest)),
      templates: templates.filter((t) => t.layers.includes(l.digest)).map((t) => t.name),
      sandboxes: rows.filter((r) => r.layers?.includes(l.digest)).length,
    });
  }
  const sandboxes = [];
  for (const r of rows) sandboxes.push({ id: r.id, name: r.name, bytes: await treeBytes(rt.dirOf(r.id)).catch(() => 0) });
  const sum = (xs: { bytes: number }[]) => xs.reduce((a, x) => a + x.bytes, 0);
  return { layers, sandboxes, sharedBytes: sum(layers), privateBytes: sum(sandboxes) };
}

/** Removes layers no template names and no sandbox stands on, and what backends derived from them. */
export async function gc(rt: RuntimeContext, graceMs = GC_GRACE_MS): Promise<{ removed: string[]; images: string[]; freedBytes: number }> {
  const layers = await rt.store.gc(await layersInUse(rt), graceMs);
  // What backends derived from layer stacks nothing stands on any more (VM images, the snapshots made on them).
  const stacks: string[][] = (await rt.store.templates()).map((t) => [...t.layers]);
  for (const r of rt.rows.stacks()) if (r.layers) stacks.push(r.layers);
  stacks.push(...snapshotLayers(rt));
  const images = { removed: [] as string[], freedBytes: 0 };
  for (const b of rt.parts.backends.values()) {
    const r = await b.gc?.(stacks, graceMs);
    if (r) images.removed.push(...r.removed), (images.freedBytes += r.freedBytes);
  }
  return { removed: layers.removed, images: images.removed, freedBytes: layers.freedBytes + images.freedBytes };
}
