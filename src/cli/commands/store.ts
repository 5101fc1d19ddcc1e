// `corral store`: what the shared layer store holds, and its garbage
// collection. store-local.ts acts on the state dir, store-remote.ts on a
// daemon (an admin tenant's key: the usage names every tenant's sandboxes).
import { formatSize } from "../../core/size.js";
import type { Context } from "../context.js";
import { table } from "../format.js";
import { print } from "../stdio.js";
import { sideOf, type Action } from "./action.js";

export interface StoreUsage {
  readonly layers: readonly { readonly digest: string; readonly bytes: number; readonly templates: readonly string[]; readonly sandboxes: number }[];
  readonly sandboxes: readonly { readonly id: string; readonly name: string; readonly bytes: number }[];
  readonly sharedBytes: number;
  readonly privateBytes: number;
}

export interface Collected {
  readonly removed: readonly string[];
  readonly images: readonly string[];
  readonly freedBytes: number;
}

export interface StoreSide {
  usage(): Promise<StoreUsage>;
  gc(): Promise<Collected>;
}

const side = (ctx: Context) =>
  sideOf<StoreSide>(
    ctx,
    async () => (await import("./store-local.js")).local,
    async () => (await import("./store-remote.js")).remote,
  );

/** `corral store du`: disk used by shared layers (once each) and by each sandbox privately. */
export const du: Action = async (ctx) => {
  const d = await (await side(ctx)).usage();
  const rows = d.layers.map((l) => [l.digest.slice(0, 12), formatSize(l.bytes), l.templates.join(",") || "-", String(l.sandboxes)]);
  const own = d.sandboxes.map((x) => [x.name, x.id, formatSize(x.bytes)]);
  await print(
    `${table(["LAYER", "SIZE", "TEMPLATES", "SANDBOXES"], rows)}\n\n${table(["SANDBOX", "ID", "PRIVATE"], own)}\n\n` +
      `shared ${formatSize(d.sharedBytes)}, private ${formatSize(d.privateBytes)}\n`,
  );
};

/** `corral store gc`: removes layers and VM images no template names and no sandbox uses. */
export const gc: Action = async (ctx) => {
  const r = await (await side(ctx)).gc();
  await print(`removed ${r.removed.length} layer(s) and ${r.images.length} VM image(s), freed ${formatSize(r.freedBytes)}\n`);
};
