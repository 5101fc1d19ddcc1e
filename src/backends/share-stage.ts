import fsp from "node:fs/promises";
import path from "node:path";
import type { HostShare } from "./backend.js";

/**
 * Where share `i` of a sandbox is bound before the container or virtiofsd
 * sees it: `<dir>/shares/<i>`, an empty directory in the sandbox's own
 * directory (not writable by the sandbox). The bind exists only in
 * corral-launch's private mount namespace, so nothing of it is left on the
 * host when the sandbox's processes end.
 */
export function shareStage(dir: string, i: number): string {
  return path.join(dir, "shares", String(i));
}

/** Makes the stage directories of `shares` (0711: a sandbox's uid range traverses them to its share). */
export async function makeShareStages(dir: string, shares: readonly HostShare[]): Promise<void> {
  if (!shares.length) return;
  await fsp.mkdir(path.join(dir, "shares"), { recursive: true, mode: 0o711 });
  for (const i of shares.keys()) await fsp.mkdir(shareStage(dir, i), { recursive: true, mode: 0o711 });
}

/**
 * corral-launch's arguments binding share `i` onto its stage: the share's
 * directory opened by fd below its allowed root (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: runtime/shares.ts says why).
 */
export function bindShareArgs(dir: string, s: HostShare, i: number): string[] {
  return ["--bind-beneath", s.root, s.path, shareStage(dir, i), s.readOnly ? "ro" : "rw"];
}
