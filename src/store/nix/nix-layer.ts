import fsp from "node:fs/promises";
import path from "node:path";
import { profileLinks, storeBaseName } from "./nix-paths.js";

/** Where the template's profile is; its bin/ comes first in the sandbox's PATH. */
export const NIX_PROFILE = "/nix/var/nix/profiles/default";
export const NIX_PROFILE_BIN = `${NIX_PROFILE}/bin`;

/**
 * Fills `dir` with the small layer a Nix template adds on top of its base:
 *
 *   nix/store/<hash-name>        an empty directory or file per closure path,
 *                                where the host's path is bind-mounted; a
 *                                symlink path is kept as the symlink itself
 *   nix/var/nix/profiles/default/bin/<prog>
 *                                links to the outputs' bin/ entries
 *
 * Reads the host's store paths (their type, the outputs' bin/ listings).
 * Returns the closure members that are symlinks.
 */
export async function writeNixLayer(dir: string, closure: readonly string[], outputs: readonly string[]): Promise<{ symlinks: string[] }> {
  const store = path.join(dir, "nix/store");
  await fsp.mkdir(store, { recursive: true, mode: 0o755 });
  const symlinks: string[] = [];
  for (const p of closure) {
    const target = path.join(store, storeBaseName(p));
    const st = await fsp.lstat(p);
    if (st.isDirectory()) await fsp.mkdir(target, { mode: 0o555 });
    else if (st.isSymbolicLink()) {
      await fsp.symlink(await fsp.readlink(p), target);
      symlinks.push(p);
    } else await fsp.writeFile(target, "", { mode: 0o444 });
  }
  const bins = [];
  for (const output of outputs) {
    const entries = await fsp.readdir(path.join(output, "bin")).catch(() => []);
    bins.push({ output, entries });
  }
  const profileBin = path.join(dir, NIX_PROFILE_BIN);
  await fsp.mkdir(profileBin, { recursive: true, mode: 0o755 });
  for (const [name, target] of profileLinks(bins)) await fsp.symlink(target, path.join(profileBin, name));
  return { symlinks };
}
