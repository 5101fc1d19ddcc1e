import { formatSize } from "../../core/size.js";
import { table } from "../format.js";
import { print } from "../stdio.js";
import { onStateDir } from "./action.js";

/** `corral snapshot create SANDBOX NAME`: saves a running microVM; it runs on. */
export const create = onStateDir(async (s, p) => {
  const { sandbox, name } = p.args as { sandbox: string; name: string };
  const x = await s.snapshot(sandbox, name);
  await print(`${x.name} ${formatSize(x.bytes)}\n`);
});

/** `corral snapshot restore NAME [--name NEW]`: a new sandbox that starts where the snapshot was. */
export const restore = onStateDir(async (s, p) => {
  const newName = p.opts["name"] as string | undefined;
  const sb = await s.restoreSnapshot(p.args["name"] as string, newName ? { name: newName } : {});
  await print(`${sb.name}\n`);
});

export const ls = onStateDir(async (s) => {
  const rows = s.listSnapshots().map((x) => [x.name, x.source, x.spec.template, formatSize(x.bytes), x.createdAt]);
  await print(`${table(["NAME", "SOURCE", "TEMPLATE", "SIZE", "CREATED"], rows)}\n`);
});

export const rm = onStateDir(async (s, p) => {
  await s.deleteSnapshot(p.args["name"] as string);
});
