import type { components } from "./api-types.js";
import { resolveConfig, type ConnectionOpts } from "./config.js";
import { errorFor, SandboxError } from "./errors.js";
import { Http, type RawBody } from "./http.js";

export type TemplateInfo = components["schemas"]["Template"];
export type BuildEvent = components["schemas"]["BuildEvent"];

export interface BuildOpts extends ConnectionOpts {
  /** Called with each `progress` event as it comes (phase, layer, bytes); a returned promise is awaited before reading on. */
  onProgress?: ((e: BuildEvent) => unknown) | undefined;
}

/**
 * Templates, shared by every tenant of the daemon. Any key may list them
 * and build a built-in one; importing takes an admin tenant's key (or one
 * of a tenant the daemon lets import), removing an admin tenant's
 * (ForbiddenError otherwise).
 */
export class Templates {
  /** The templates in the store and the built-in ones (built or not). */
  static async list(opts: ConnectionOpts = {}): Promise<TemplateInfo[]> {
    return (await new Http(resolveConfig(opts)).json("get", "/v1/templates", {})).templates;
  }

  /** Builds a built-in template now (a create would build it on first use); resolves with it once built. */
  static async build(name: string, opts: BuildOpts = {}): Promise<TemplateInfo> {
    const http = new Http(resolveConfig(opts));
    const res = await http.stream("post", "/v1/templates/{name}/build", { path: { name }, timeoutMs: 0 });
    return progress(http, res, opts.onProgress, `build of ${name}`);
  }

  /**
   * Makes template `name` of an image archive (`docker save`, `podman
   * save`, or an OCI layout in a tar; plain or gzip), sent as it is read.
   */
  static async import(name: string, archive: RawBody, opts: BuildOpts = {}): Promise<TemplateInfo> {
    const http = new Http(resolveConfig(opts));
    // The daemon tells gzip from tar by the archive's first bytes.
    const res = await http.stream("put", "/v1/templates/{name}/oci", { path: { name }, body: archive, contentType: "application/x-tar", timeoutMs: 0 });
    return progress(http, res, opts.onProgress, `import of ${name}`);
  }

  /** Forgets a template; its layers go at the next `Store.gc()` once nothing stands on them. */
  static async remove(name: string, opts: ConnectionOpts = {}): Promise<void> {
    await new Http(resolveConfig(opts)).json("delete", "/v1/templates/{name}", { path: { name } });
  }
}

/** Reads a build's events: progress to `onProgress`, then the template of `done`, or the error of `error`. */
async function progress(http: Http, res: Awaited<ReturnType<Http["stream"]>>, onProgress: BuildOpts["onProgress"], what: string): Promise<TemplateInfo> {
  let result: TemplateInfo | undefined;
  await http.ndjson(res, (value) => {
    const e = value as BuildEvent;
    if (e.type === "progress") return onProgress?.(e);
    if (e.type === "error") throw errorFor({ status: 0, code: e.error?.code ?? "build_failed", message: e.error?.message ?? `${what} failed` });
    if (e.type === "done" && e.template) result = e.template;
    return undefined;
  });
  if (!result) throw new SandboxError("bad_response", `${what}: the stream ended before its done event`);
  return result;
}
