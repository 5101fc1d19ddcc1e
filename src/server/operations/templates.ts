import fs from "node:fs";
import fsp from "node:fs/promises";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CorralError, ForbiddenError } from "../../core/errors.js";
import { BUILTIN_TEMPLATES, type Store } from "../../store/store.js";
import { progressEvents } from "./progress.js";
import { noContent, ok, param, requireAdmin, type Operations } from "./types.js";

/** The API's view of a template. */
export async function templateJson(store: Store, name: string) {
  const t = await store.template(name);
  if (!t) return { name, built: false, source: BUILTIN_TEMPLATES.get(name)?.description ?? "" };
  const layers = await Promise.all(t.layers.map((d) => store.layer(d)));
  return { name, built: true, layers: [...t.layers], bytes: layers.reduce((a, l) => a + (l?.bytes ?? 0), 0), source: t.source };
}

/**
 * Templates, shared by every tenant: any tenant may list them and build a
 * built-in one (a create would build it anyway); importing takes an admin
 * tenant or one allowed to import (--template-import-tenant), removing an
 * admin tenant.
 */
export const templateOperations: Operations = {
  async listTemplates(ctx) {
    const store = ctx.sandboxes.store;
    const names = new Set([...(await store.templates()).map((t) => t.name), ...BUILTIN_TEMPLATES.keys()]);
    return ok({ templates: await Promise.all([...names].sort().map((n) => templateJson(store, n))) });
  },

  // Build progress as events, then done or error.
  async buildTemplate(ctx, req) {
    const store = ctx.sandboxes.store;
    const name = param(req, "name");
    return {
      status: 200,
      events: progressEvents(async (progress) => {
        await store.ensureTemplate(name, progress);
        return { template: await templateJson(store, name) };
      }),
    };
  },

  /**
   * An image archive as the request's bytes, saved to the store's tmp dir
   * (up to ctx.importLimit bytes), then imported with progress events like
   * a build. Everything about the name (valid, free, not a built-in's) is
   * checked before the bytes are read.
   */
  async importTemplate(ctx, req) {
    const store = ctx.sandboxes.store;
    const name = param(req, "name");
    const upload = req.upload!;
    try {
      if (!req.operator && !ctx.admins.has(req.tenant) && !ctx.templateImporters.has(req.tenant)) {
        throw new ForbiddenError(`tenant "${req.tenant}" may not import templates (corral daemon --admin-tenant or --template-import-tenant allows it)`);
      }
      await store.checkImportName(name);
      if ((upload.length ?? 0) > ctx.importLimit) throw tooLarge(ctx.importLimit);
    } catch (e) {
      upload.discard();
      throw e;
    }
    const file = `${store.workPath("upload")}.tar`;
    try {
      await pipeline(upload.stream, limit(ctx.importLimit), fs.createWriteStream(file, { mode: 0o600 }));
    } catch (e) {
      upload.discard();
      await fsp.rm(file, { force: true });
      throw e;
    }
    req.log.info({ template: name, tenant: req.tenant }, "template import started");
    return {
      status: 200,
      events: progressEvents(async (progress) => {
        try {
          await store.importOci(name, file, progress, "upload");
          return { template: await templateJson(store, name) };
        } finally {
          // Gone before the caller sees the end of the stream (it may look at once).
          await fsp.rm(file, { force: true });
        }
      }),
    };
  },

  async deleteTemplate(ctx, req) {
    requireAdmin(ctx, req, "remove templates");
    await ctx.sandboxes.store.removeTemplate(param(req, "name"));
    req.log.info({ template: param(req, "name"), tenant: req.tenant }, "template removed");
    return noContent;
  },
};

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
