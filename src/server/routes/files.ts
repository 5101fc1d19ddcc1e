import type { FastifyInstance } from "fastify";
import { PassThrough, type Readable } from "node:stream";
import type { AgentClient } from "../../agent/client.js";
import { InvalidArgumentError, SandboxOperationError } from "../../core/errors.js";
import { param, queryPath, type ServerContext } from "../context.js";

/**
 * Files inside a sandbox, always through its agent (which resolves paths
 * inside the sandbox root). Bodies stream both ways: nothing is buffered
 * whole, whatever the size.
 */
export function fileRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const s = ctx.sandboxes;
  const agent = (req: { tenant: string; params: unknown }) => s.agent(param(req as never, "id"), { tenant: req.tenant });
  /** One agent connection for the length of `fn`. */
  const withAgent = async <T>(req: { tenant: string; params: unknown }, fn: (c: AgentClient) => Promise<T>): Promise<T> => {
    const client = await agent(req);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  };

  app.get("/v1/sandboxes/:id/files", { config: { operationId: "readFile" } }, async (req, reply) => {
    const path = queryPath(req);
    const client = await agent(req);
    try {
      const st = await client.stat(path);
      if (st.type === "dir") throw new SandboxOperationError("EISDIR", `${path} is a directory`);
      const stream: Readable = client.readFile(path);
      stream.once("close", () => client.close());
      return reply.type("application/octet-stream").send(stream);
    } catch (e) {
      client.close();
      throw e;
    }
  });

  app.put("/v1/sandboxes/:id/files", { config: { operationId: "writeFile" } }, async (req, reply) => {
    const path = queryPath(req);
    const modeText = (req.query as Record<string, unknown>)["mode"];
    if (modeText !== undefined && !/^[0-7]{3,4}$/.test(String(modeText))) throw new InvalidArgumentError("mode must be octal, e.g. 644");
    const client = await agent(req);
    // Read through a PassThrough: when the agent fails mid-upload, ending the
    // iteration destroys the PassThrough, not the request (and its socket).
    const upload = req.body as Readable;
    const body = new PassThrough();
    upload.pipe(body);
    try {
      const r = await client.writeFile(path, body, {
        mkdirs: true,
        ...(modeText !== undefined ? { mode: parseInt(String(modeText), 8) } : {}),
      });
      return { path, size: r.size };
    } catch (e) {
      // The rest of the body is not wanted (ENOSPC, say). Closing at once
      // (or answering "Connection: close", after which Node destroys the
      // socket as soon as the answer is written) resets the connection under
      // a client still sending, which may then never read the error. So the
      // answer goes out on an open connection, the body is read and
      // discarded for a bounded while (lingering close), then the
      // connection is cut.
      upload.unpipe(body);
      lingerThenClose(upload);
      throw e;
    } finally {
      client.close();
    }
  });

  app.delete("/v1/sandboxes/:id/files", { config: { operationId: "removeFile" } }, async (req, reply) => {
    const path = queryPath(req);
    await withAgent(req, (c) => c.remove(path, { recursive: (req.query as Record<string, unknown>)["recursive"] === "true" }));
    return reply.code(204).send();
  });

  app.get("/v1/sandboxes/:id/files/stat", { config: { operationId: "statFile" } }, async (req) => {
    const path = queryPath(req);
    return { path, ...(await withAgent(req, (c) => c.stat(path, false))) };
  });

  app.get("/v1/sandboxes/:id/files/list", { config: { operationId: "listFiles" } }, async (req) => {
    const path = queryPath(req);
    return { entries: await withAgent(req, (c) => c.list(path)) };
  });

  app.post("/v1/sandboxes/:id/files/mkdir", { config: { operationId: "makeDir" } }, async (req, reply) => {
    const body = req.body as { path: string; parents?: boolean };
    await withAgent(req, (c) => c.mkdir(body.path, { parents: body.parents ?? true }));
    return reply.code(204).send();
  });
}

const LINGER_MS = 2000;
const LINGER_BYTES = 256 * 1024 * 1024;

/** Discards what a client keeps sending for up to LINGER_MS / LINGER_BYTES, then ends the request. */
function lingerThenClose(req: Readable): void {
  let seen = 0;
  const stop = () => {
    clearTimeout(timer);
    req.destroy();
  };
  const timer = setTimeout(stop, LINGER_MS);
  req.on("data", (c: Buffer) => {
    seen += c.length;
    if (seen > LINGER_BYTES) stop();
  });
  req.once("end", () => clearTimeout(timer));
  req.once("close", () => clearTimeout(timer));
  req.resume();
}
