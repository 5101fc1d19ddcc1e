import type { AgentClient } from "../../agent/client.js";
import { NotFoundError, SandboxOperationError } from "../../core/errors.js";
import { processKey, type ProcessEntry, type ServerContext } from "../context.js";
import { startCommand, type ExecBody } from "../commands.js";
import { byPid } from "./process-streams.js";
import { noContent, ok, param, scopeOf, type OpRequest, type Operations } from "./types.js";

/** How long a waitProcess long poll waits unless told (the spec's default), ms. */
const WAIT_DEFAULT_MS = 30_000;

/**
 * Commands in a sandbox: a foreground exec streams its events (start,
 * output as it comes, exit) and dies with its caller; a background one
 * answers with its start and is then reached by pid (stdin, signals,
 * wait).
 */
export const processOperations: Operations = {
  async exec(ctx, req) {
    const cmd = await startCommand(ctx, scopeOf(req), param(req, "id"), req.body as ExecBody);
    req.sandbox = cmd.sandboxId;
    if (!cmd.events) return ok({ type: "start", pid: cmd.pid });
    return { status: 200, events: cmd.events };
  },

  async writeStdin(ctx, req) {
    const p = knownProcess(ctx, req);
    if (!p) return byPid(ctx, req, (c, pid) => stdinByPid(c, pid, req));
    if (p.ended) throw new NotFoundError("process", param(req, "pid"));
    // A body is optional (closing stdin needs none); when there is one it streams.
    if (req.upload) {
      try {
        for await (const chunk of req.upload.stream) await p.handle.writeStdin(chunk as Buffer);
      } catch (e) {
        req.upload.discard();
        throw e;
      }
    }
    if (req.query["eof"] === true) await p.handle.closeStdin();
    return noContent;
  },

  // Long poll: the exit event once the command ends, or its start event
  // again (202) if it still runs after timeoutMs.
  async waitProcess(ctx, req) {
    const timeoutMs = (req.query["timeoutMs"] as number | undefined) ?? WAIT_DEFAULT_MS;
    const p = knownProcess(ctx, req);
    if (!p) return byPid(ctx, req, (c, pid) => waitByPid(c, pid, timeoutMs));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
    const event = await Promise.race([p.finished, timedOut]);
    clearTimeout(timer);
    if (event) return ok(event);
    return { status: 202, body: { type: "start", pid: req.params["pid"] } };
  },

  async signalProcess(ctx, req) {
    const signal = (req.body as { signal: number }).signal;
    const p = knownProcess(ctx, req);
    if (!p) await byPid(ctx, req, (c, pid) => c.signalPid(pid, signal));
    else if (p.ended) throw new NotFoundError("process", param(req, "pid"));
    else await p.handle.kill(signal);
    return noContent;
  },
};

/** A command this daemon started (running, or ended and remembered), or undefined: ask the agent by pid. */
function knownProcess(ctx: ServerContext, req: OpRequest): ProcessEntry | undefined {
  const rec = ctx.sandboxes.record(param(req, "id"), scopeOf(req));
  req.sandbox = rec.id;
  return ctx.processes.get(processKey(rec.id, req.params["pid"] as number));
}

/** writeStdin for a command this daemon did not start: to the agent by pid (a terminal's input after a daemon restart). */
async function stdinByPid(c: AgentClient, pid: number, req: OpRequest) {
  if (!(await c.processes()).some((p) => p.pid === pid)) throw new SandboxOperationError("ESRCH", `no process ${pid}`);
  if (req.upload) {
    try {
      for await (const chunk of req.upload.stream) await c.writeStdinPid(pid, chunk as Buffer);
    } catch (e) {
      req.upload.discard();
      throw e;
    }
  }
  if (req.query["eof"] === true) await c.writeStdinPid(pid, undefined, true);
  return noContent;
}

/** waitProcess for a command this daemon did not start: its exit, by joining it on the agent, or 202 at the deadline. */
async function waitByPid(c: AgentClient, pid: number, timeoutMs: number) {
  const joined = c.attach(pid);
  joined.result.catch(() => {}); // a pid that is not there fails both: reported through pid
  await joined.pid;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  const r = await Promise.race([joined.result, timedOut]);
  clearTimeout(timer);
  if (!r) return { status: 202, body: { type: "start", pid } };
  return ok({ type: "exit", exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, oomKilled: false });
}


