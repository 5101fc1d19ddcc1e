import type { FastifyInstance } from "fastify";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { PassThrough, Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CorralError, ForbiddenError } from "../../core/errors.js";
import { toHttpError } from "../http-errors.js";
import { param, type ServerContext } from "../context.js";
import { templateJson } from "./templates.js";

/**
 * PUT /v1/templates/{name}/oci: an image archive as the raw body, saved to
 * the store's tmp dir (up to ctx.importLimit bytes), then imported with
 * progress as NDJSON like a build. Templates are shared by every tenant, so
 * only tenants the daemon was started with (--template-import-tenant) may
 * add one; everything else about the name (valid, free, not a built-in's)
 * is checked before the body is read.
 */
export function templateImportRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const store = ctx.sandboxes.store;
  app.addContentTypeParser(["application/x-tar", "application/gzip"], (_req, payload, done) => done(null, payload));

  app.put("/v1/templates/:name/oci", { config: { operationId: "importTemplate" } }, async (req, reply) => {
    const name = param(req, "name");
    if (!ctx.templateImporters.has(req.tenant)) {
      throw new ForbiddenError(`tenant "${req.tenant}" may not import templates (corral daemon --template-import-tenant allows it)`);
    }
    await store.checkImportName(name);
    const declared = Number(req.headers["content-length"]);
    if (declared > ctx.importLimit) throw tooLarge(ctx.importLimit);

    const file = `${store.workPath("upload")}.tar`;
    try {
      await pipeline(req.body as Readable, limit(ctx.importLimit), fs.createWriteStream(file, { mode: 0o600 }));
      const out = new PassThrough();
      void reply.type("application/x-ndjson").send(out);
      const line = (o: unknown) => out.write(`${JSON.stringify(o)}\n`);
      try {
        await store.importOci(name, file, (p) => line({ type: "progress", ...p }), "upload");
        line({ type: "done", template: await templateJson(store, name) });
      } catch (e) {
        line({ type: "error", error: toHttpError(e).body.error });
      }
      // Gone before the caller sees the end of the stream (it may look at once).
      await fsp.rm(file, { force: true });
      out.end();
      return reply;
    } finally {
      await fsp.rm(file, { force: true });
    }
  });
}

function tooLarge(max: number): CorralError {
  return new CorralError("payload_too_large", `the image archive is larger than this daemon accepts (${max} bytes)`, 413);
}

function limit(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      cb(seen > max ? tooLarge(max) : null, chunk);
    },
  });
}
