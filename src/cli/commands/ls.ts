import { formatSize } from "../../core/size.js";
import { age, table, until } from "../format.js";
import { print } from "../stdio.js";
import type { Action } from "./action.js";

/** `corral ls [--json]`: the sandboxes, as a table or as the target's JSON. */
export const ls: Action = async (ctx, p) => {
  const all = await (await ctx.target()).list();
  if (p.opts["json"]) return void (await print(`${JSON.stringify(all, null, 2)}\n`));
  const rows = all.map((x) => [
    x.name,
    x.id,
    x.spec.template,
    x.spec.backend,
    x.status,
    age(x.createdAt),
    formatSize(x.spec.resources.memory),
    x.expiresAt ? `expires in ${until(x.expiresAt)}` : x.spec.lifetime.mode,
    // Made by the operator's declared state: a change there may recreate it.
    x.declared ? "yes" : "-",
  ]);
  await print(`${table(["NAME", "ID", "TEMPLATE", "BACKEND", "STATE", "AGE", "MEMORY", "LIFETIME", "DECLARED"], rows)}\n`);
};
