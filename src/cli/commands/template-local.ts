import { InvalidArgumentError } from "../../core/errors.js";
import { parseSpec } from "../../core/sandbox-spec.js";
import type { Sandboxes } from "../../runtime/sandboxes.js";
import { BUILTIN_TEMPLATES } from "../../store/store.js";
import type { MadeTemplate, TemplateSide } from "./template.js";

/** The template commands on the state dir, through the runtime and its store. */
export function local(s: Sandboxes): TemplateSide {
  const shown = (t: { name: string; layers: readonly string[]; nix?: { storePaths: readonly string[] } | undefined }): MadeTemplate => ({
    name: t.name,
    layers: t.layers,
    ...(t.nix ? { storePaths: t.nix.storePaths.length } : {}),
  });
  return {
    async list() {
      const stored = new Map((await s.store.templates()).map((t) => [t.name, t]));
      const names = [...new Set([...stored.keys(), ...BUILTIN_TEMPLATES.keys()])].sort();
      return Promise.all(
        names.map(async (name) => {
          const t = stored.get(name);
          if (!t) return { name, built: false, source: BUILTIN_TEMPLATES.get(name)?.description ?? "" };
          const layers = await Promise.all(t.layers.map((d) => s.store.layer(d)));
          return { name, built: true, bytes: layers.reduce((a, l) => a + (l?.bytes ?? 0), 0), source: t.source };
        }),
      );
    },

    async build(name, onProgress) {
      parseSpec({ template: name }); // a name the store can hold, before looking it up
      if (!BUILTIN_TEMPLATES.has(name) && !(await s.store.template(name))) {
        throw new InvalidArgumentError(
          `"${name}" is not a built-in template (those are ${[...BUILTIN_TEMPLATES.keys()].join(", ")}); ` +
            `to make a new one give --nix FILE (a Nix expression) or --oci ARCHIVE (docker/podman save, an OCI layout tar)`,
        );
      }
      return shown(await s.store.ensureTemplate(name, onProgress));
    },

    async buildNix(name, file, opts, onProgress) {
      parseSpec({ template: name });
      return shown(await s.buildNixTemplate(name, file, opts, onProgress));
    },

    async importOci(name, archive, onProgress) {
      return shown(await s.store.importOci(name, archive, onProgress));
    },

    async commit(sandbox, name) {
      return shown(await s.commit(sandbox, name));
    },

    async remove(name) {
      await s.store.removeTemplate(name);
    },
  };
}
