import fsp from "node:fs/promises";
import path from "node:path";
import { ConflictError, InvalidArgumentError } from "../../core/errors.js";
import { parseSpec } from "../../core/sandbox-spec.js";
import type { ProgressFn } from "../builders/builder.js";
import { BUILTIN_TEMPLATES, type Store, type TemplateRecord } from "../store.js";
import { nixAddRoot, nixBuild, nixClosure } from "./nix-command.js";
import { isStorePath, storeBaseName } from "./nix-paths.js";
import { writeNixLayer } from "./nix-layer.js";

/** The filesystem a Nix template stands on: /bin/sh and the rest of busybox, so `cmd` and shells work. */
export const NIX_BASE_TEMPLATE = "busybox";

export interface NixTemplateOptions {
  /** Mount the host's whole /nix/store instead of the closure. */
  readonly shareHostStore?: boolean;
  /**
   * The template it stands on (default busybox): e.g. debian-nix, whose
   * `nix-build` a `nix: { writable: true }` sandbox runs. Not a Nix
   * template itself (one store per template).
   */
  readonly base?: string;
}

/**
 * Builds a template from a Nix file: nix-build, the outputs' closure
 * (nix-store -qR), a layer with /nix/store's mount points and a profile,
 * on top of the busybox template. The template is registered only when all
 * of that worked; until then it only exists in the store's tmp/ and as GC
 * roots there, which go with it. A rebuild under the same name replaces
 * the template (sandboxes already running keep what they had).
 */
export async function buildNixTemplate(store: Store, name: string, file: string, opts: NixTemplateOptions, progress: ProgressFn = () => {}): Promise<TemplateRecord> {
  checkName(name);
  const abs = path.resolve(file);
  if (!(await fsp.stat(abs).then((st) => st.isFile(), () => false))) throw new InvalidArgumentError(`no Nix file at ${abs}`);
  return nixTemplate(store, name, `nix:${abs}`, opts, progress, (work) => nixBuild(abs, path.join(work, "result"), progress));
}

/**
 * A template from store paths already in the host's store (the NixOS
 * module's `template = pkgs.hello`: the system's closure holds them), their
 * closure as for buildNixTemplate, with no nix-build. A path the store does
 * not hold fails nix-store -qR and registers nothing.
 */
export async function nixTemplateFromOutputs(store: Store, name: string, outputs: readonly string[], opts: NixTemplateOptions = {}, progress: ProgressFn = () => {}): Promise<TemplateRecord> {
  checkName(name);
  const bad = outputs.find((o) => !isStorePath(o));
  if (bad !== undefined || outputs.length === 0) throw new InvalidArgumentError(`not a store path: ${JSON.stringify(bad ?? "(none)")}`);
  return nixTemplate(store, name, outputsSource(outputs, opts), opts, progress, async () => [...outputs]);
}

/** The source a template from `outputs` records: the same for the same outputs and base, so a caller can tell it is up to date. */
export function outputsSource(outputs: readonly string[], opts: NixTemplateOptions = {}): string {
  return `nix-outputs:${opts.base ?? NIX_BASE_TEMPLATE}:${outputs.join(",")}`;
}

function checkName(name: string): void {
  parseSpec({ template: name }); // a valid template name, or InvalidSpecError naming the field
  if (BUILTIN_TEMPLATES.has(name)) throw new ConflictError(`"${name}" is a built-in template; give the Nix template another name`);
}

/** The closure of what `outputs` gives, a layer and the template, under the template's lock (see buildNixTemplate). */
async function nixTemplate(
  store: Store,
  name: string,
  source: string,
  opts: NixTemplateOptions,
  progress: ProgressFn,
  outputsOf: (work: string) => Promise<string[]>,
): Promise<TemplateRecord> {
  const base = await store.ensureTemplate(opts.base ?? NIX_BASE_TEMPLATE, progress);
  if (base.nix) throw new InvalidArgumentError(`base template "${base.name}" is a Nix template: a Nix template stands on one without a store of its own`);
  return store.withTemplateLock(name, async () => {
    const work = store.workPath(`nix-${name}`);
    await fsp.mkdir(work, { mode: 0o700 });
    const roots = path.join(store.nixRootsDir, name);
    let registered: TemplateRecord | undefined;
    try {
      const outputs = await outputsOf(work);
      progress({ phase: "closure", message: "nix-store -qR", percent: 82 });
      const storePaths = await nixClosure(outputs);
      const layerDir = path.join(work, "layer");
      const { symlinks } = await writeNixLayer(layerDir, storePaths, outputs);
      const layer = await store.addLayer(layerDir, `nix-layer:${source}`, progress);
      await fsp.mkdir(roots, { recursive: true, mode: 0o700 });
      for (const o of outputs) await nixAddRoot(path.join(roots, storeBaseName(o)), o);
      registered = await store.registerTemplate(name, [...base.layers, layer.digest], source, {
        nix: {
          storePaths,
          symlinks,
          outputs,
          shareHostStore: opts.shareHostStore ?? false,
          layer: layer.digest,
        },
      });
      return registered;
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
      // Keep the roots of whatever template now has this name, and only those.
      const keep = new Set((registered ?? (await store.template(name)))?.nix?.outputs.map(storeBaseName) ?? []);
      for (const link of await fsp.readdir(roots).catch(() => [])) {
        if (!keep.has(link)) await fsp.rm(path.join(roots, link), { force: true });
      }
      if (keep.size === 0) await fsp.rm(roots, { recursive: true, force: true });
    }
  });
}
