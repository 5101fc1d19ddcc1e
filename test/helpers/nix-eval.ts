// Evaluating the repository's Nix files offline with Debian's nix-instantiate
// and nixpkgs' lib vendored at ../shared/vendor/nixpkgs-lib (docs/nixos.md).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

/** The repository (dist/test/helpers → ../../..). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/**
 * nixpkgs' lib: $CORRAL_NIXPKGS_LIB, else the vendored copy in `shared/`
 * beside the checkout (../shared from the main checkout, ../../shared from
 * a worktree under wt/; /work/shared on these machines, for a clone
 * elsewhere such as CI's).
 */
export const NIXPKGS_LIB =
  process.env["CORRAL_NIXPKGS_LIB"] ??
  [path.resolve(REPO, "../shared/vendor/nixpkgs-lib"), path.resolve(REPO, "../../shared/vendor/nixpkgs-lib"), "/work/shared/vendor/nixpkgs-lib"].find((d) =>
    fs.existsSync(path.join(d, "lib/default.nix")),
  ) ??
  path.resolve(REPO, "../shared/vendor/nixpkgs-lib");

/** Why the Nix evaluation suites cannot run here, or false. */
export const noNixEval =
  spawnSync("nix-instantiate", ["--version"]).status !== 0
    ? "nix-instantiate is not installed (apt-get install nix-bin)"
    : !fs.existsSync(path.join(NIXPKGS_LIB, "lib/default.nix"))
      ? `nixpkgs' lib is not at ${NIXPKGS_LIB} (set CORRAL_NIXPKGS_LIB)`
      : false;

/** Options for Nix as root without a daemon or nixbld group (docs/DESIGN.md "Single-user Nix here"). */
export const NIX_OPTS = ["--option", "build-users-group", ""];

export interface NixResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `nix-instantiate ARGS` (its warnings included in stderr). */
export function nixInstantiate(args: readonly string[]): NixResult {
  const r = spawnSync("nix-instantiate", [...NIX_OPTS, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `nix-instantiate --eval --strict --json -E EXPR`, parsed; throws with Nix's error. */
export function nixEvalJson<T>(expr: string): T {
  const r = nixInstantiate(["--eval", "--strict", "--json", "-E", expr]);
  if (r.code !== 0) throw new Error(r.stderr.trim());
  return JSON.parse(r.stdout) as T;
}

export interface ModuleEval {
  declared: string;
  unit: string;
  tmpfiles: string[];
  reloadTriggers: string[];
  failedAssertions: string[];
  /** services.corral.sandboxes.<name>.identity */
  identities: Record<string, { mac: string; cid: number; tap: string }>;
}

/** The module evaluated for `services.corral` = `config` (Nix text); Nix's error on failure. */
export function evalModule(dir: string, config: string): ModuleEval {
  const file = path.join(dir, `cfg-${randomBytes(4).toString("hex")}.nix`);
  fs.writeFileSync(file, `{ ... }: { services.corral = ${config}; }`);
  return nixEvalJson<ModuleEval>(`import ${REPO}/test/nix/eval-module.nix { libPath = ${NIXPKGS_LIB}/lib; configFile = ${file}; repo = ${REPO}; }`);
}

/** A package stand-in whose bin/corral is this repository's. */
export const PACKAGE = `{ type = "derivation"; name = "corral"; outPath = "${REPO}"; }`;

