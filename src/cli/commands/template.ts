// `corral template`: list, build, import, commit, remove. The flags and the
// output are here; template-local.ts acts on the state dir, template-remote.ts
// on a daemon.
import fs from "node:fs";
import { InvalidArgumentError } from "../../core/errors.js";
import { formatSize } from "../../core/size.js";
import type { ProgressFn } from "../../store/builders/builder.js";
import type { Context } from "../context.js";
import { table } from "../format.js";
import { withProgress } from "../progress.js";
import { print } from "../stdio.js";
import { sideOf, type Action } from "./action.js";

/** A template as `template ls` shows it. */
export interface TemplateRow {
  readonly name: string;
  readonly built: boolean;
  /** Its layers' bytes, when built. */
  readonly bytes?: number | undefined;
  /** Where it came from; a built-in's description until it is built. */
  readonly source?: string | undefined;
}

/** A template made or built, as the commands print it. */
export interface MadeTemplate {
  readonly name: string;
  readonly layers: readonly string[];
  /** A Nix template's store paths. */
  readonly storePaths?: number | undefined;
}

/** What the template commands need, on the state dir or a daemon. */
export interface TemplateSide {
  /** The store's templates and the built-in ones, by name. */
  list(): Promise<TemplateRow[]>;
  /** A built-in template (or one already made), built now if it is not. */
  build(name: string, onProgress: ProgressFn): Promise<MadeTemplate>;
  buildNix(name: string, file: string, opts: { shareHostStore: boolean; base?: string }, onProgress: ProgressFn): Promise<MadeTemplate>;
  /** Template `name` of an image archive on this host. */
  importOci(name: string, archive: string, onProgress: ProgressFn): Promise<MadeTemplate>;
  /** A persistent sandbox's template plus what it wrote, as template `name`. */
  commit(sandbox: string, name: string): Promise<MadeTemplate>;
  remove(name: string): Promise<void>;
}

const side = (ctx: Context) =>
  sideOf<TemplateSide>(
    ctx,
    async () => (await import("./template-local.js")).local,
    async () => (await import("./template-remote.js")).remote,
  );

const made = (t: MadeTemplate) => `${t.name} ${t.layers.join(",")}${t.storePaths !== undefined ? ` ${t.storePaths} store path(s)` : ""}\n`;

/** `corral template commit SANDBOX NAME`: a persistent sandbox's template plus what it wrote, as a new template. */
export const commit: Action = async (ctx, p) => {
  const { sandbox, name } = p.args as { sandbox: string; name: string };
  await print(made(await (await side(ctx)).commit(sandbox, name)));
};

/** `corral template rm NAME`: its layers go at the next store gc, once no sandbox uses them. */
export const rm: Action = async (ctx, p) => {
  await (await side(ctx)).remove(p.args["name"] as string);
};

/** `corral template ls`: the store's templates and the built-in ones. */
export const ls: Action = async (ctx) => {
  const rows = (await (await side(ctx)).list()).map((t) => [t.name, t.built ? "built" : "not built", t.built ? formatSize(t.bytes ?? 0) : "-", t.source ?? ""]);
  await print(`${table(["NAME", "STATE", "SIZE", "SOURCE"], rows)}\n`);
};

/**
 * `corral template build NAME [--nix FILE | --oci ARCHIVE]`: a built-in
 * template now (otherwise it is built on first use), or a new one.
 */
export const build: Action = async (ctx, p) => {
  const name = p.args["name"] as string;
  const f = p.opts as { nix?: string; shareHostStore?: boolean; oci?: string; base?: string };
  if (f.shareHostStore && !f.nix) throw new InvalidArgumentError("--share-host-store needs --nix");
  if (f.base && !f.nix) throw new InvalidArgumentError("--base needs --nix");
  if (f.nix && f.oci) throw new InvalidArgumentError("--nix and --oci exclude each other");
  const { nix: nixFile, oci } = f;
  if (oci) readableFile(oci);
  const s = await side(ctx);
  const t = await withProgress(name, (onProgress) =>
    nixFile ? s.buildNix(name, nixFile, { shareHostStore: f.shareHostStore ?? false, ...(f.base ? { base: f.base } : {}) }, onProgress) : oci ? s.importOci(name, oci, onProgress) : s.build(name, onProgress),
  );
  await print(made(t));
};

/** An image archive must be a regular file this process can read, wherever it is sent (a directory gave EISDIR, exit 125). */
function readableFile(archive: string): void {
  let why: string | undefined;
  try {
    fs.accessSync(archive, fs.constants.R_OK);
    if (!fs.statSync(archive).isFile()) why = "not a regular file";
  } catch (e) {
    why = (e as NodeJS.ErrnoException).code ?? String(e);
  }
  if (why) throw new InvalidArgumentError(`cannot read the image archive ${archive}: ${why}`);
}
