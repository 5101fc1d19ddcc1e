import { PassThrough } from "node:stream";
import { archiveIn, archiveOut } from "../../agent/archive.js";
import type { AgentClient } from "../../agent/client.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { noContent, type OpRequest, type Operations } from "./types.js";
import { sandboxAgent } from "./sandbox-agent.js";

/**
 * Directory trees in and out of a sandbox as tar streams, as Docker's
 * `GET/PUT /containers/{id}/archive` (agent/archive.ts runs the sandbox's
 * own tar through the agent). Each request has an agent connection of its
 * own: closing it (the caller left) kills that tar.
 */
export const archiveOperations: Operations = {
  async downloadArchive(ctx, req) {
    const path = req.query["path"] as string;
    const client = await sandboxAgent(ctx, req);
    try {
      const stream = await archiveOut(client, path);
      stream.once("close", () => client.close());
      return { status: 200, bytes: stream, type: "application/x-tar" };
    } catch (e) {
      client.close();
      throw e;
    }
  },

  async uploadArchive(ctx, req) {
    const path = req.query["path"] as string;
    const upload = req.upload!; // required by the spec: the dispatcher has checked it is there
    // Read through a PassThrough (as writeFile): when tar stops early, ending
    // the iteration destroys the PassThrough, not the request and its socket.
    const body = new PassThrough();
    upload.stream.pipe(body);
    upload.stream.once("close", () => {
      if (!upload.stream.readableEnded) body.destroy(new InvalidArgumentError("the upload ended before its last byte"));
    });
    let client: AgentClient | undefined;
    try {
      client = await sandboxAgent(ctx, req);
      const r = await archiveIn(client, path, body);
      // tar read the archive's end before the body's (its padding): the rest is dropped, not left unread.
      if (!r.complete || !upload.stream.readableEnded) dropRest(upload, body);
      return noContent;
    } catch (e) {
      dropRest(upload, body);
      throw e;
    } finally {
      client?.close();
    }
  },
};

function dropRest(upload: NonNullable<OpRequest["upload"]>, body: PassThrough): void {
  upload.stream.unpipe(body);
  upload.discard();
}

