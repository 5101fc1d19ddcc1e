import { runCommand } from "../../host/command.js";
import { BackendError } from "../../core/errors.js";
import type { ProgressFn } from "../builders/builder.js";
import { nixProgressParser, parseStorePaths } from "./nix-paths.js";

/**
 * Settings for Nix as root without a daemon (Debian's nix-bin, no
 * nix-setup-systemd): no `nixbld` group exists, so builds run as root
 * (`build-users-group` empty; Nix's build sandbox still applies where the
 * kernel allows it, falling back otherwise), and nothing is fetched from a
 * binary cache (there is no network to one). The local store is used
 * directly unless the host set NIX_REMOTE (a multi-user install's daemon),
 * which is then respected so the host's Nix stays in charge of its store.
 */
export const NIX_OPTIONS: readonly string[] = [
  "--option", "build-users-group", "",
  "--option", "substituters", "",
];

/**
 * Builds `file` (nix-build), leaving an indirect GC root per output at
 * `outLink`(-<output>) for as long as that link exists, so the host's Nix
 * GC cannot take the outputs between the build and their registration.
 * Returns the output paths in nix-build's order.
 */
export async function nixBuild(file: string, outLink: string, progress: ProgressFn): Promise<string[]> {
  progress({ phase: "evaluate", message: `nix-build ${file}`, percent: 2 });
  const r = await runCommand("nix-build", [...NIX_OPTIONS, "--out-link", outLink, "--", file], { onStderrLine: nixProgressParser(progress), allowFailure: true });
  if (r.code !== 0) throw new BackendError(`nix-build ${file} failed (exit ${r.code}): ${nixError(r.stderr)}`);
  const outputs = parseStorePaths(r.stdout, "nix-build");
  if (outputs.length === 0) throw new BackendError(`nix-build ${file} built nothing`);
  return outputs;
}

/** At most this much of Nix's error is kept in the message. */
const ERROR_LINES = 20;
const BUILDER_LINES = 10;
const ERROR_CHARS = 2000;

/** Nix's own progress lines (the plan, the derivations, "building ..."), not a builder's output. */
const PROGRESS = /^(these \d+ derivations? will be built|this derivation will be built|these \d+ paths will be fetched|this path will be fetched| {2}\/nix\/store\/|building '\/nix\/store\/)/;

/**
 * What of nix-build's stderr a failure shows. Nix prints an evaluation
 * error's line first (`error: syntax error, unexpected '='`), then where
 * it is (the file, a few numbered lines, a caret); runCommand's tail of 5
 * lines cut that first line off. So: from the first `error:` line on (at
 * most ERROR_LINES), after the last BUILDER_LINES lines a builder printed
 * before it (a failed build's reason is in its output); without an
 * `error:` line, the last lines. At most ERROR_CHARS characters.
 */
export function nixError(stderr: string): string {
  const lines = stderr.replace(/\x1b\[[0-9;]*m/g, "").trimEnd().split("\n");
  const first = lines.findIndex((l) => l.startsWith("error:"));
  const kept =
    first < 0
      ? lines.slice(-ERROR_LINES)
      : [...lines.slice(0, first).filter((l) => !PROGRESS.test(l)).slice(-BUILDER_LINES), ...lines.slice(first, first + ERROR_LINES)];
  const text = kept.join("\n").trim();
  return text.length > ERROR_CHARS ? `${text.slice(0, ERROR_CHARS)}…` : text;
}

/** Every store path the given ones reference, transitively, themselves included; sorted. */
export async function nixClosure(paths: readonly string[]): Promise<string[]> {
  const r = await runCommand("nix-store", [...NIX_OPTIONS, "--query", "--requisites", "--", ...paths]);
  return parseStorePaths(r.stdout, "nix-store -qR").sort();
}

/** Makes `link` a GC root of `storePath` (an indirect one, gone when the link is). */
export async function nixAddRoot(link: string, storePath: string): Promise<void> {
  await runCommand("nix-store", [...NIX_OPTIONS, "--add-root", link, "--realise", "--", storePath]);
}
