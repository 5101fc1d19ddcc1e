import { specFrom, type SpecFlags } from "../spec-flags.js";
import { print } from "../stdio.js";
import type { Action } from "./action.js";

/** `corral create`: starts a sandbox and prints its name. */
export const create: Action = async (ctx, p) => {
  const spec = specFrom(p.opts as unknown as SpecFlags);
  const sb = await (await ctx.target()).create(spec);
  await print(`${sb.name}\n`);
};
