import type { Action } from "./action.js";

/** `corral rm [-f] SANDBOX...`: stops and removes each; -f passes over those that do not exist. */
export const rm: Action = async (ctx, p) => {
  const target = await ctx.target();
  for (const ref of p.args["sandbox"] as string[]) await target.remove(ref, p.opts["force"] === true);
};
