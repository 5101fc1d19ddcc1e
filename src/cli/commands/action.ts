import type { Sandboxes } from "../../runtime/sandboxes.js";
import type { Parsed } from "../args.js";
import type { Context } from "../context.js";

/**
 * A command's code: its arguments and options come as the parser found
 * them (program.ts declares their names and shapes); it resolves to the
 * exit status, or nothing for 0.
 */
export type Action = (ctx: Context, p: Parsed) => Promise<number | void>;

/**
 * A command that acts on the state dir, with or without a daemon
 * configured (admin, template, snapshot, store: the API has no operation
 * for most of them yet). Its daemon version slots in as `remote`, run when
 * a daemon is configured, beside the state dir's.
 */
export function onStateDir(local: (s: Sandboxes, p: Parsed) => Promise<number | void>, remote?: Action): Action {
  return async (ctx, p) => (remote && ctx.apiUrl ? remote(ctx, p) : local(await ctx.state(), p));
}
