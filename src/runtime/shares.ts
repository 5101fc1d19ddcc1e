import fsp from "node:fs/promises";
import path from "node:path";
import type { HostShare } from "../backends/backend.js";
import { CorralError, InvalidArgumentError, InvalidSpecError } from "../core/errors.js";
import { pathsOverlap, type ShareSpec } from "../core/share-spec.js";

/** A share the operator does not allow (403): its code is stable for programs. */
export class ShareNotAllowedError extends CorralError {
  constructor(message: string) {
    super("share_not_allowed", message, 403);
  }
}

/** Where a Nix template's store is: no share may cover, hide or sit below it. */
const NIX_STORE = "/nix/store";

/**
 * Which host directories sandboxes may see (the operator's `corral daemon
 * --allow-share DIR`, the NixOS module's `allowedShares`) and the checks a
 * share's source passes before any backend mounts it. Each check names
 * what it guards against:
 *
 * - Only below an allowed directory, compared as real paths (realpath,
 *   both sides): a source of `/srv/work/../../etc`, or a symlink a
 *   sandbox wrote into a writable share (`ws/x -> /etc`, then asked for
 *   `/srv/work/ws/x` in the next sandbox), resolves outside and is refused.
 * - Never `/` as an allowed directory, never one that is, holds or lies in
 *   the state dir: a sandbox seeing the state dir reads other sandboxes'
 *   disks and the database (API key hashes, every tenant's records), and
 *   writes the layers every sandbox shares.
 * - The check and the mount are apart in time, so the backends do not
 *   mount the joined path: corral-launch opens root then the relative path
 *   with openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS and binds the fd,
 *   so a component swapped for a symlink since (a check/use race, as in
 *   CVE-2018-15664 against docker cp) fails instead of being followed.
 *
 * Changing the list (SIGHUP) applies to sandboxes made or started after.
 */
export class SharePolicy {
  private roots: readonly string[] = [];
  private stateReal: string | undefined;

  constructor(private readonly stateDir: string) {}

  /** The allowed directories, as real paths. */
  get allowed(): readonly string[] {
    return this.roots;
  }

  /** Replaces the allowed directories; refuses (naming it) one that does not exist, is `/` or overlaps the state dir. */
  async allow(dirs: readonly string[]): Promise<void> {
    const state = await this.state();
    const out: string[] = [];
    for (const d of dirs) {
      if (!path.isAbsolute(d)) throw new InvalidArgumentError(`allowed share ${JSON.stringify(d)} must be an absolute path`);
      const real = await fsp.realpath(d).catch(() => undefined);
      if (real === undefined || !(await isDir(real))) throw new InvalidArgumentError(`allowed share ${d} is not a directory on this host`);
      if (real === "/") throw new InvalidArgumentError(`allowed share ${d} is the host's root: allow the directories sandboxes may see, never /`);
      if (pathsOverlap(real, state)) throw new InvalidArgumentError(`allowed share ${d} overlaps the state dir ${state}: sandboxes may never see it`);
      if (!out.includes(real)) out.push(real);
    }
    this.roots = out;
  }

  /**
   * The spec's shares checked and resolved, parents before children (a
   * share inside another's target is mounted after it). `nixTemplate`: the
   * template brings its own /nix/store, which no share may overlap.
   */
  async resolve(shares: readonly ShareSpec[] | undefined, nixTemplate = false): Promise<HostShare[]> {
    if (!shares?.length) return [];
    const state = await this.state();
    const out: (HostShare & { depth: number })[] = [];
    for (const [i, s] of shares.entries()) {
      if (nixTemplate && pathsOverlap(s.target, NIX_STORE)) {
        throw new InvalidSpecError([{ path: `shares.${i}.target`, message: `the template is a Nix template: its store is at ${NIX_STORE}, which a share may not cover` }]);
      }
      const real = await fsp.realpath(s.source).catch(() => undefined);
      if (real === undefined || !(await isDir(real))) throw new InvalidSpecError([{ path: `shares.${i}.source`, message: `${s.source} is not a directory on the host` }]);
      const root = this.roots.find((r) => real === r || real.startsWith(`${r}/`));
      if (root === undefined) {
        throw new ShareNotAllowedError(
          `shares.${i}.source: ${s.source}${real === s.source ? "" : ` (really ${real})`} is not below a directory the operator allows sandboxes to see (corral daemon --allow-share DIR)`,
        );
      }
      if (pathsOverlap(real, state)) throw new ShareNotAllowedError(`shares.${i}.source: ${s.source} overlaps corral's state dir, which no sandbox may see`);
      out.push({ root, path: path.relative(root, real) || ".", target: s.target, readOnly: s.readOnly, depth: s.target.split("/").length });
    }
    return out.sort((a, b) => a.depth - b.depth).map(({ depth: _, ...h }) => h);
  }

  private async state(): Promise<string> {
    this.stateReal ??= await fsp.realpath(this.stateDir);
    return this.stateReal;
  }
}

async function isDir(p: string): Promise<boolean> {
  return fsp.stat(p).then((st) => st.isDirectory(), () => false);
}
