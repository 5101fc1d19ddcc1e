import { print } from "../stdio.js";
import type { Action } from "./action.js";

/** `corral logs SANDBOX`: a VM's serial console or a container's runtime log, the last 64 KiB. */
export const logs: Action = async (ctx, p) => {
  await print(await (await ctx.target()).logs(p.args["sandbox"] as string));
};
