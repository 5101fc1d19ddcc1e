import { keyValues } from "../format.js";
import { LOGIN_SHELL, runTerminal } from "../terminal.js";
import type { Action } from "./action.js";

/** `corral shell SANDBOX [-- CMD...]`: a login shell (or CMD) on a terminal; exits with its status. */
export const shell: Action = async (ctx, p) => {
  const { sandbox, command } = p.args as { sandbox: string; command?: string[] };
  const f = p.opts as { env: string[]; workdir?: string };
  return runTerminal(await ctx.target(), sandbox, {
    argv: command && command.length > 0 ? command : LOGIN_SHELL,
    env: keyValues(f.env, "--env"),
    ...(f.workdir ? { workdir: f.workdir } : {}),
  });
};
