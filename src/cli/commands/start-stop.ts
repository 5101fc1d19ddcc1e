import type { Action } from "./action.js";

/** `corral stop SANDBOX...`: a persistent sandbox's processes end, its disk stays. */
export const stop: Action = async (ctx, p) => {
  const target = await ctx.target();
  for (const ref of p.args["sandbox"] as string[]) await target.setRunning(ref, false);
};

/** `corral start SANDBOX...`: a stopped sandbox runs again, with the disk it had. */
export const start: Action = async (ctx, p) => {
  const target = await ctx.target();
  for (const ref of p.args["sandbox"] as string[]) await target.setRunning(ref, true);
};
