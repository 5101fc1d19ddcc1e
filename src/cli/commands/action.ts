import type { Sandboxes } from "../../runtime/sandboxes.js";
import type { Parsed } from "../args.js";
import type { Connection, Context } from "../context.js";

/**
 * A command's code: its arguments and options come as the parser found
 * them (program.ts declares their names and shapes); it resolves to the
 * exit status, or nothing for 0.
 */
export type Action = (ctx: Context, p: Parsed) => Promise<number | void>;

/**
 * Where a command group (template, snapshot, store, admin) acts: its
 * daemon side, made by `remote` over the SDK, when a daemon is configured
 * or serves the state dir;
 * else its state dir side, made by `local` over the runtime. Each side is
 * a module of its own, imported only when chosen, so a command through a
 * daemon never loads the runtime (zod, SQLite, the backends) and one on
 * the state dir never loads the SDK. The command's own file parses its
 * flags and prints, so both sides print the same.
 */
export async function sideOf<T>(ctx: Context, local: () => Promise<(s: Sandboxes) => T>, remote: () => Promise<(c: Connection) => T>): Promise<T> {
  const conn = await ctx.connection();
  return conn ? (await remote())(conn) : (await local())(await ctx.state());
}
