import { formatSize } from "../../core/size.js";
import { table } from "../format.js";
import { print } from "../stdio.js";
import { onStateDir } from "./action.js";

/** `corral store du`: disk used by shared layers (once each) and by each sandbox privately. */
export const du = onStateDir(async (s) => {
  const d = await s.diskUsage();
  const rows = d.layers.map((l) => [l.digest.slice(0, 12), formatSize(l.bytes), l.templates.join(",") || "-", String(l.sandboxes)]);
  const own = d.sandboxes.map((x) => [x.name, x.id, formatSize(x.bytes)]);
  await print(
    `${table(["LAYER", "SIZE", "TEMPLATES", "SANDBOXES"], rows)}\n\n${table(["SANDBOX", "ID", "PRIVATE"], own)}\n\n` +
      `shared ${formatSize(d.sharedBytes)}, private ${formatSize(d.privateBytes)}\n`,
  );
});

/** `corral store gc`: removes layers and VM images no template names and no sandbox uses. */
export const gc = onStateDir(async (s) => {
  const r = await s.gc();
  await print(`removed ${r.removed.length} layer(s) and ${r.images.length} VM image(s), freed ${formatSize(r.freedBytes)}\n`);
});
