import { specFrom, type SpecFlags } from "../spec-flags.js";
import type { Action } from "./action.js";
import { runIn } from "./exec.js";

/** `corral run -- CMD...`: a throwaway sandbox, the command's exit status; the sandbox is removed whatever happens. */
export const run: Action = async (ctx, p) => {
  const { command } = p.args as { command: string[] };
  const f = p.opts as unknown as SpecFlags & { interactive?: boolean };
  const spec = specFrom(f);
  const target = await ctx.target();
  const sb = await target.create(spec);
  try {
    return await runIn(target, sb.id, { argv: command, env: {}, stdin: f.interactive ?? false });
  } finally {
    await target.remove(sb.id, false);
  }
};
