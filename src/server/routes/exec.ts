import type { FastifyInstance } from "fastify";
import { NotFoundError } from "../../core/errors.js";
import { param, processKey, type ProcessEntry, type ServerContext } from "../context.js";
import { startCommand, type ExecBody } from "../commands.js";

/**
 * POST /v1/sandboxes/:id/exec streams NDJSON: start, stdout/stderr chunks
 * (base64) as they come, exit. The agent connection lives as long as the
 * command; a client that goes away mid-stream kills a foreground command.
 */
export function execRoutes(app: FastifyInstance, ctx: ServerContext, checkedEvent: (op: string, event: unknown) => unknown): void {

  app.post("/v1/sandboxes/:id/exec", { config: { operationId: "exec" } }, async (req, reply) => {
    const pending: unknown[] = [];
    let started = false;
    const encode = (event: unknown) => `${JSON.stringify(checkedEvent("exec", event))}\n`;
    const line = (event: unknown) => {
      if (started) reply.raw.write(encode(event));
      else pending.push(event);
    };
    const { pid, background, finished, end } = await startCommand(ctx, req.tenant, param(req, "id"), req.body as ExecBody, line);
    if (background) return { type: "start", pid };

    // Written straight to the socket (fastify still runs its onResponse
    // hooks): the headers go out with the start event, and the exit event
    // with the end of the body.
    reply.hijack();
    const raw = reply.raw;
    raw.on("close", () => {
      // The client left before the exit: that kills the command.
      if (!raw.writableFinished) end();
    });
    // It may have left while the command was starting, before there was a listener.
    if (!raw.socket || raw.socket.destroyed) end();
    // Corked until this tick's promise callbacks have run: a command that
    // already ended (the agent sends its start with its exit) is answered
    // in a single write, head, start and exit together.
    const socket = raw.socket;
    socket?.cork();
    process.nextTick(() => socket?.uncork());
    raw.writeHead(200, { "content-type": "application/x-ndjson" });
    started = true;
    line({ type: "start", pid });
    for (const e of pending.splice(0)) line(e);
    void finished.then((event) => raw.end(encode(event)));
    return reply;
  });

  app.post("/v1/sandboxes/:id/processes/:pid/stdin", { config: { operationId: "writeStdin" } }, async (req, reply) => {
    const p = runningProcess(ctx, req.tenant, param(req, "id"), param(req, "pid"));
    // A body is optional (closing stdin needs none); when there is one it streams.
    const body = req.body as AsyncIterable<Buffer> | undefined;
    if (body && typeof body[Symbol.asyncIterator] === "function") {
      for await (const chunk of body) await p.handle.writeStdin(chunk);
    }
    if ((req.query as Record<string, unknown>)["eof"] === "true") await p.handle.closeStdin();
    return reply.code(204).send();
  });

  // Long poll: the exit event once the command ends, or its start event
  // again (202) if it still runs after timeoutMs.
  app.post("/v1/sandboxes/:id/processes/:pid/wait", { config: { operationId: "waitProcess" } }, async (req, reply) => {
    const p = processOf(ctx, req.tenant, param(req, "id"), param(req, "pid"));
    const timeoutMs = Math.min(Number((req.query as Record<string, unknown>)["timeoutMs"] ?? 30_000) || 30_000, 300_000);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
    const event = await Promise.race([p.finished, timedOut]);
    clearTimeout(timer);
    if (event) return event;
    return reply.code(202).send({ type: "start", pid: Number(param(req, "pid")) });
  });

  app.post("/v1/sandboxes/:id/processes/:pid/signal", { config: { operationId: "signalProcess" } }, async (req, reply) => {
    const p = runningProcess(ctx, req.tenant, param(req, "id"), param(req, "pid"));
    await p.handle.kill((req.body as { signal: number }).signal);
    return reply.code(204).send();
  });
}

/** A process that still runs: an ended one takes no stdin or signals (404, as for an unknown pid). */
function runningProcess(ctx: ServerContext, tenant: string, ref: string, pid: string): ProcessEntry {
  const p = processOf(ctx, tenant, ref, pid);
  if (p.ended) throw new NotFoundError("process", pid);
  return p;
}

function processOf(ctx: ServerContext, tenant: string, ref: string, pid: string): ProcessEntry {
  const rec = ctx.sandboxes.record(ref, { tenant });
  const p = ctx.processes.get(processKey(rec.id, Number(pid)));
  if (!p) throw new NotFoundError("process", pid);
  return p;
}
