import type { AgentClient } from "../../agent/client.js";
import type { ServerContext } from "../context.js";
import { param, scopeOf, type OpRequest } from "./types.js";

/**
 * A new agent connection to the sandbox a request names (`id`), within its
 * scope, with the sandbox's id noted on the request for its log line: for
 * the operations that hold a connection of their own (files, watch, archives).
 */
export function sandboxAgent(ctx: ServerContext, req: OpRequest): Promise<AgentClient> {
  const id = ctx.sandboxes.record(param(req, "id"), scopeOf(req)).id;
  req.sandbox = id;
  return ctx.sandboxes.agent(id, scopeOf(req));
}
