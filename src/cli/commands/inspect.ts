import { print } from "../stdio.js";
import type { Action } from "./action.js";

/** `corral inspect SANDBOX`: its record and usage (null when not running) as JSON. */
export const inspect: Action = async (ctx, p) => {
  await print(`${JSON.stringify(await (await ctx.target()).inspect(p.args["sandbox"] as string), null, 2)}\n`);
};
