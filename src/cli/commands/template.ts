import { InvalidArgumentError } from "../../core/errors.js";
import { parseSpec } from "../../core/sandbox-spec.js";
import { formatSize } from "../../core/size.js";
import { BUILTIN_TEMPLATES } from "../../store/store.js";
import { table } from "../format.js";
import { withProgress } from "../progress.js";
import { print } from "../stdio.js";
import { onStateDir } from "./action.js";

/** `corral template commit SANDBOX NAME`: a persistent sandbox's template plus what it wrote, as a new template. */
export const commit = onStateDir(async (s, p) => {
  const { sandbox, name } = p.args as { sandbox: string; name: string };
  const t = await s.commit(sandbox, name);
  await print(`${t.name} ${t.layers.join(",")}\n`);
});

/** `corral template rm NAME`: its layers go at the next store gc, once no sandbox uses them. */
export const rm = onStateDir(async (s, p) => {
  await s.store.removeTemplate(p.args["name"] as string);
});

/** `corral template ls`: the store's templates and the built-in ones. */
export const ls = onStateDir(async (s) => {
  const stored = new Map((await s.store.templates()).map((t) => [t.name, t]));
  const names = [...new Set([...stored.keys(), ...BUILTIN_TEMPLATES.keys()])].sort();
  const rows: string[][] = [];
  for (const n of names) {
    const t = stored.get(n);
    const layers = t ? await Promise.all(t.layers.map((d) => s.store.layer(d))) : [];
    const bytes = layers.reduce((a, l) => a + (l?.bytes ?? 0), 0);
    rows.push([n, t ? "built" : "not built", t ? formatSize(bytes) : "-", t?.source ?? BUILTIN_TEMPLATES.get(n)?.description ?? ""]);
  }
  await print(`${table(["NAME", "STATE", "SIZE", "SOURCE"], rows)}\n`);
});

/**
 * `corral template build NAME [--nix FILE | --oci ARCHIVE]`: a built-in
 * template now (otherwise it is built on first use), or a new one.
 */
export const build = onStateDir(async (s, p) => {
  const name = p.args["name"] as string;
  const f = p.opts as { nix?: string; shareHostStore?: boolean; oci?: string };
  if (f.shareHostStore && !f.nix) throw new InvalidArgumentError("--share-host-store needs --nix");
  if (f.nix && f.oci) throw new InvalidArgumentError("--nix and --oci exclude each other");
  const { nix: nixFile, oci } = f;
  parseSpec({ template: name }); // a name the store can hold, before looking it up
  if (!nixFile && !oci && !BUILTIN_TEMPLATES.has(name) && !(await s.store.template(name))) {
    throw new InvalidArgumentError(
      `"${name}" is not a built-in template (those are ${[...BUILTIN_TEMPLATES.keys()].join(", ")}); ` +
        `to make a new one give --nix FILE (a Nix expression) or --oci ARCHIVE (docker/podman save, an OCI layout tar)`,
    );
  }
  const t = await withProgress(name, (onProgress) =>
    nixFile
      ? s.buildNixTemplate(name, nixFile, { shareHostStore: f.shareHostStore ?? false }, onProgress)
      : oci
        ? s.store.importOci(name, oci, onProgress)
        : s.store.ensureTemplate(name, onProgress),
  );
  await print(`${t.name} ${t.layers.join(",")}${t.nix ? ` ${t.nix.storePaths.length} store path(s)` : ""}\n`);
});
