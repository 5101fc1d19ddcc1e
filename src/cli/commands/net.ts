import { InvalidArgumentError } from "../../core/errors.js";
import { networkFrom, type NetworkFlags } from "../spec-flags.js";
import { print } from "../stdio.js";
import type { Action } from "./action.js";

/**
 * `corral net set SANDBOX [--allow R]... [--deny R]... [--join NET]...`: a
 * running sandbox's egress policy and named networks, replaced whole and
 * in force at once (no flag at all: every destination but the always
 * dropped ones, no named network).
 */
export const netSet: Action = async (ctx, p) => {
  const f = p.opts as NetworkFlags;
  const network = networkFrom({ ...f, network: "nat" }) ?? { mode: "nat", egress: { deny: [] }, networks: [] };
  const target = await ctx.target();
  await target.setNetwork(p.args["sandbox"] as string, network);
};

/** `corral port SANDBOX PORT`: the URL the daemon serves the port at (with the access token, for a browser). */
export const port: Action = async (ctx, p) => {
  const n = Number(p.args["port"]);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`a port is 1 to 65535, got "${String(p.args["port"])}"`);
  const target = await ctx.target();
  const r = await target.port(p.args["sandbox"] as string, n);
  await print(`${r.public ? r.url : (r.tokenUrl ?? r.url)}\n`);
};
