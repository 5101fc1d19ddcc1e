// Nix files that build offline (Debian's static busybox as the builder),
// for the suites on Nix templates: see docs/DESIGN.md "Single-user Nix here".
import fsp from "node:fs/promises";
import path from "node:path";
import { spawnSync } from "node:child_process";

/** Why Nix suites cannot run here, or false. */
export const noNix = spawnSync("nix-build", ["--version"]).status === 0 ? false : "nix-build is not installed (apt-get install nix-bin)";

/**
 * A toolchain-like pair: `greet-lib` (a shell function reading a text file
 * from the store) and `hello` (a program `hello-nix` sourcing it). The
 * nonce makes a run build them afresh even when the host store has an
 * earlier run's.
 */
export function toolchainNix(nonce: string): string {
  return `
let
  bb = builtins.path { path = ./bb; name = "busybox-static"; };
  sh = "\${bb}/busybox";
  greeting = builtins.toFile "greeting-${nonce}" "hello from a nix closure\\n";
  lib = builtins.derivation {
    name = "greet-lib-${nonce}";
    system = "x86_64-linux";
    builder = sh;
    args = [ "sh" "-c" ''
      \${sh} mkdir -p $out/share
      \${sh} printf 'greet() { \${sh} cat \${greeting}; }\\n' > $out/share/greet.sh
    '' ];
  };
in builtins.derivation {
  name = "hello-${nonce}";
  system = "x86_64-linux";
  builder = sh;
  args = [ "sh" "-c" ''
    \${sh} mkdir -p $out/bin
    \${sh} printf '#!\${sh} sh\\n. \${lib}/share/greet.sh\\ngreet\\n' > $out/bin/hello-nix
    \${sh} chmod 555 $out/bin/hello-nix
  '' ];
}
`;
}

/** One derivation running `script` with busybox's sh. */
export function singleNix(name: string, script: string): string {
  return `
let bb = builtins.path { path = ./bb; name = "busybox-static"; }; in
builtins.derivation {
  name = "${name}";
  system = "x86_64-linux";
  builder = "\${bb}/busybox";
  args = [ "sh" "-c" ${JSON.stringify(script)} ];
}
`;
}

/** Makes `dir` hold `bb/busybox` (the builder the files above import) and the given files. */
export async function writeNixDir(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
  await fsp.mkdir(path.join(dir, "bb"), { recursive: true });
  await fsp.copyFile("/bin/busybox", path.join(dir, "bb/busybox"));
  for (const [name, text] of Object.entries(files)) await fsp.writeFile(path.join(dir, name), text);
}
