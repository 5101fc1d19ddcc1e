import fs from "node:fs";
import { InvalidArgumentError } from "../../core/errors.js";
import { NotFoundError, Sandbox, Templates, type BuildEvent, type TemplateInfo } from "../../../sdk/src/index.js";
import type { ProgressFn } from "../../store/builders/builder.js";
import { servedRefusal, type Connection } from "../context.js";
import type { MadeTemplate, TemplateSide } from "./template.js";

/**
 * The template commands on a daemon, through the SDK. Templates are the
 * daemon's, shared by its tenants: any key lists and builds built-in ones;
 * import takes an admin tenant's key (or an importer's), commit and rm an
 * admin tenant's.
 */
export function remote(conn: Connection): TemplateSide {
  return {
    async list() {
      return Templates.list(conn);
    },

    async build(name, onProgress) {
      try {
        return shown(await Templates.build(name, { ...conn, onProgress: progressTo(onProgress) }));
      } catch (e) {
        if (!(e instanceof NotFoundError && e.code === "template_not_found")) throw e;
        throw new InvalidArgumentError(
          `"${name}" is neither a built-in template nor one the daemon has (corral template ls lists them); to make a new one give --oci ARCHIVE (docker/podman save, an OCI layout tar)`,
        );
      }
    },

    async buildNix() {
      // The API builds no Nix expressions: the file is on this host, nix-build and the store on the daemon's.
      if (conn.served) throw servedRefusal(conn.served, "template build --nix");
      throw new InvalidArgumentError("template build --nix acts on the state dir only (the daemon's API takes no Nix files): run it on the daemon's host with --state-dir");
    },

    async importOci(name, archive, onProgress) {
      // Sent as it is read; the daemon checks the name and the key before it reads the bytes.
      const body = fs.createReadStream(archive);
      try {
        return shown(await Templates.import(name, body, { ...conn, onProgress: progressTo(onProgress) }));
      } finally {
        body.destroy();
      }
    },

    async commit(sandbox, name) {
      // No timeout: copying the sandbox's writes takes as long as they are big.
      return shown(await (await Sandbox.connect(sandbox, { ...conn, requestTimeoutMs: 0 })).commit(name));
    },

    async remove(name) {
      await Templates.remove(name, conn);
    },
  };
}

function shown(t: TemplateInfo): MadeTemplate {
  return { name: t.name, layers: t.layers ?? [] };
}

/** The daemon's progress events as the state dir's builders report them. */
function progressTo(onProgress: ProgressFn): (e: BuildEvent) => void {
  return (e) => {
    const { type: _type, template: _template, error: _error, phase, ...rest } = e;
    onProgress({ phase: phase ?? "", ...rest });
  };
}
