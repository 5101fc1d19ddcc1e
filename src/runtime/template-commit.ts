import fsp from "node:fs/promises";
import { ConflictError } from "../core/errors.js";
import { parseSpec } from "../core/sandbox-spec.js";
import type { TemplateRecord } from "../store/store.js";
import type { RuntimeContext } from "./context.js";
import { recordEvent } from "./db.js";
import { start, stop } from "./lifecycle.js";
import type { SandboxRecord } from "./records.js";

/**
 * Makes template `templateName` from persistent sandbox `find()`: its
 * template's layers plus its writable layer, copied (cp -a keeps
 * overlayfs's whiteouts and opaque-directory xattrs) while the sandbox is
 * stopped, then content addressed like any layer. A running sandbox is
 * stopped for the copy and started again.
 */
export async function commit(rt: RuntimeContext, find: () => SandboxRecord, templateName: string): Promise<TemplateRecord> {
  parseSpec({ template: templateName }); // the name must be a valid template name
  if (await rt.store.template(templateName)) throw new ConflictError(`a template named "${templateName}" already exists`);
  const r = find();
  if (r.spec.lifetime.mode !== "persistent" || !rt.handle(r).hasDisk()) {
    throw new ConflictError(`sandbox "${r.name}" keeps its writable layer in memory (it was created ephemeral); only sandboxes created persistent can be committed`);
  }
  const from = await rt.store.template(r.spec.template);
  const base = rt.rows.layersOf(r.id) ?? [...(from?.layers ?? [])];
  const wasRunning = r.state === "running";
  if (wasRunning) await stop(rt, r);
  const copy = rt.store.workPath(`commit-${r.id}`);
  try {
    await rt.handle(r).exportWritableLayer(copy, rt.store.workPath(`mnt-${r.id}`));
    // Its files are owned by the sandbox's own uid range: shifted to the store's.
    const layer = await rt.store.addLayer(copy, `commit:${r.name}`, undefined, rt.uidBaseOf(r.id));
    // A Nix template's store paths come along (a sandbox cannot write to them).
    const t = await rt.store.registerTemplate(templateName, [...base, layer.digest], `commit of sandbox ${r.name} on ${r.spec.template}`, { nix: from?.nix });
    recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "committed", detail: { template: templateName, layer: layer.digest } });
    return t;
  } finally {
    await fsp.rm(copy, { recursive: true, force: true }); // left only when the layer was already stored
    if (wasRunning) await start(rt, { ...r, state: "stopped" });
  }
}
