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
  const r = await runCommand("nix-build", [...NIX_OPTIONS, "--out-link", outLink, "--", file], { onStderrLine: nixProgressParser(progress) });
  const outputs = parseStorePaths(r.stdout, "nix-build");
  if (outputs.length === 0) throw new BackendError(`nix-build ${file} built nothing`);
  return outputs;
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
