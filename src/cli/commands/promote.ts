import type { Action } from "./action.js";

/**
 * `corral promote SANDBOX...`: an ephemeral sandbox becomes persistent (no
 * timeout, kept with what it wrote until `corral rm`): the runtime's
 * promote on the state dir, the API's promoteSandbox through a daemon.
 */
export const promote: Action = async (ctx, p) => {
  const target = await ctx.target();
  for (const ref of p.args["sandbox"] as string[]) await target.promote(ref);
};
