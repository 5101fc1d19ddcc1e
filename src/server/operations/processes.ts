import { NotFoundError } from "../../core/errors.js";
import { processKey, type ProcessEntry, type ServerContext } from "../context.js";
import { startCommand, type ExecBody } from "../commands.js";
import { noContent, ok, param, type OpRequest, type Operations } from "./types.js";

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
    const cmd = await startCommand(ctx, req.tenant, param(req, "id"), req.body as ExecBody);
    req.sandbox = cmd.sandboxId;
    if (!cmd.events) return ok({ type: "start", pid: cmd.pid });
    return { status: 200, events: cmd.events };
  },

  async writeStdin(ctx, req) {
    const p = runningProcess(ctx, req);
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
    const p = processOf(ctx, req);
    const timeoutMs = (req.query["timeoutMs"] as number | undefined) ?? WAIT_DEFAULT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
    const event = await Promise.race([p.finished, timedOut]);
    clearTimeout(timer);
    if (event) return ok(event);
    return { status: 202, body: { type: "start", pid: req.params["pid"] } };
  },

  async signalProcess(ctx, req) {
    const p = runningProcess(ctx, req);
    await p.handle.kill((req.body as { signal: number }).signal);
    return noContent;
  },
};

/** A process that still runs: an ended one takes no stdin or signals (404, as for an unknown pid). */
function runningProcess(ctx: ServerContext, req: OpRequest): ProcessEntry {
  const p = processOf(ctx, req);
  if (p.ended) throw new NotFoundError("process", param(req, "pid"));
  return p;
}

function processOf(ctx: ServerContext, req: OpRequest): ProcessEntry {
  const rec = ctx.sandboxes.record(param(req, "id"), { tenant: req.tenant });
  req.sandbox = rec.id;
  const p = ctx.processes.get(processKey(rec.id, req.params["pid"] as number));
  if (!p) throw new NotFoundError("process", param(req, "pid"));
  return p;
}
