import { PassThrough, type Readable } from "node:stream";
import type { AgentClient } from "../../agent/client.js";
import { InvalidArgumentError, SandboxOperationError } from "../../core/errors.js";
import type { ServerContext } from "../context.js";
import { sandboxAgent } from "./sandbox-agent.js";
import { noContent, ok, type OpRequest, type Operations } from "./types.js";

/**
 * Files inside a sandbox, always through its agent (which resolves paths
 * inside the sandbox root), on a connection of their own (sandboxAgent:
 * the sandbox's id goes on the request's log line). Bytes stream
 * both ways: nothing is buffered whole, whatever the size.
 */
export const fileOperations: Operations = {
  async readFile(ctx, req) {
    const path = req.query["path"] as string;
    const client = await sandboxAgent(ctx, req);
    try {
      const st = await client.stat(path);
      if (st.type === "dir") throw new SandboxOperationError("EISDIR", `${path} is a directory`);
      // The agent's stream pauses the connection when its reader falls behind.
      const stream: Readable = client.readFile(path);
      stream.once("close", () => client.close());
      return { status: 200, bytes: stream, type: "application/octet-stream" };
    } catch (e) {
      client.close();
      throw e;
    }
  },

  async writeFile(ctx, req) {
    const path = req.query["path"] as string;
    const mode = req.query["mode"] as string | undefined;
    const upload = req.upload!; // required by the spec: the dispatcher has checked it is there
    let client: AgentClient | undefined;
    // Read through a PassThrough: when the agent fails mid-upload, ending the
    // iteration destroys the PassThrough, not the upload (an HTTP request and its socket).
    const body = new PassThrough();
    try {
      client = await sandboxAgent(ctx, req);
      upload.stream.pipe(body);
      // pipe() passes on neither an error nor a cut: an upload that ends
      // short (the caller left, cancelled) must fail the write, not leave it waiting.
      upload.stream.once("close", () => {
        if (!upload.stream.readableEnded) body.destroy(new InvalidArgumentError("the upload ended before its last byte"));
      });
      const r = await client.writeFile(path, body, { mkdirs: true, ...(mode !== undefined ? { mode: parseInt(mode, 8) } : {}) });
      return ok({ path, size: r.size });
    } catch (e) {
      // The rest of the body is not wanted (ENOSPC, say): the transport
      // drops it without cutting off a caller still sending (see Upload).
      upload.stream.unpipe(body);
      upload.discard();
      throw e;
    } finally {
      client?.close();
    }
  },

  async removeFile(ctx, req) {
    const path = req.query["path"] as string;
    await withAgent(ctx, req, (c) => c.remove(path, { recursive: req.query["recursive"] === true }));
    return noContent;
  },

  async statFile(ctx, req) {
    const path = req.query["path"] as string;
    return ok({ path, ...(await withAgent(ctx, req, (c) => c.stat(path, false))) });
  },

  async listFiles(ctx, req) {
    const path = req.query["path"] as string;
    return ok({ entries: await withAgent(ctx, req, (c) => c.list(path)) });
  },

  async makeDir(ctx, req) {
    const body = req.body as { path: string; parents?: boolean };
    await withAgent(ctx, req, (c) => c.mkdir(body.path, { parents: body.parents ?? true }));
    return noContent;
  },
};

/** One agent connection for the length of `fn`. */
async function withAgent<T>(ctx: ServerContext, req: OpRequest, fn: (c: AgentClient) => Promise<T>): Promise<T> {
  const client = await sandboxAgent(ctx, req);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
