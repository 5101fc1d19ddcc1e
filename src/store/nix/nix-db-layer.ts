import fsp from "node:fs/promises";
import path from "node:path";
import { createHash } from "node:crypto";
import { runCommand } from "../../host/command.js";
import type { Store } from "../store.js";
import { withLock } from "../lock.js";
import { NIX_OPTIONS } from "./nix-command.js";

/**
 * Nix's settings in a writable-store sandbox: root without a daemon or a
 * nixbld group (builds run as root), no sandbox of Nix's own (a container
 * has no CAP_SYS_ADMIN for its namespaces; a VM is the sandbox), nothing
 * fetched (no binary cache is reachable).
 */
export const SANDBOX_NIX_CONF = "build-users-group =\nsandbox = false\nsubstituters =\n";

/** Bumped when what the layer holds changes, so older layers are not reused. */
const LAYER_VERSION = "1";

/**
 * The layer a `nix: { writable: true }` sandbox gets on top of its
 * template's: Nix's database (`/nix/var/nix/db`) with the registration of
 * `paths` (their hashes, sizes, references, derivers: `nix-store
 * --dump-db`), or of the host's whole store when `paths` is undefined (the
 * host's store shared in), loaded into an empty store (`nix-store --store
 * DIR --load-db`), and /etc/nix/nix.conf. With it nix-build inside knows
 * the store's paths as valid: it uses them and adds to them, in the
 * sandbox's own writable layer.
 *
 * Stored as a layer like any other (shifted to the sandbox uid range, so
 * the sandbox's root owns its database), found again by the hash of the
 * registration: built once per closure. Returns its digest.
 */
export async function ensureNixDbLayer(store: Store, paths: readonly string[] | undefined): Promise<string> {
  const reg = withoutDerivations((await runCommand("nix-store", [...NIX_OPTIONS, "--dump-db", ...(paths ? ["--", ...paths] : [])])).stdout);
  const key = createHash("sha256").update(`${LAYER_VERSION}\n${SANDBOX_NIX_CONF}\n${reg}`).digest("hex");
  const index = path.join(store.dir, "nix-db", key);
  const known = async () => {
    const digest = await fsp.readFile(index, "utf8").catch(() => "");
    return digest && (await store.layer(digest.trim())) ? digest.trim() : undefined;
  };
  const have = await known();
  if (have) return have;
  await fsp.mkdir(path.dirname(index), { recursive: true, mode: 0o700 });
  return withLock(path.join(store.locksDir, `nix-db-${key}.lock`), async () => {
    const again = await known();
    if (again) return again;
    const work = store.workPath("nix-db");
    await fsp.mkdir(work, { mode: 0o700 });
    try {
      const root = path.join(work, "root");
      await runCommand("nix-store", [...NIX_OPTIONS, "--store", root, "--load-db"], { input: reg });
      const layer = path.join(work, "layer");
      await fsp.mkdir(path.join(layer, "nix/var"), { recursive: true, mode: 0o755 });
      await fsp.rename(path.join(root, "nix/var/nix"), path.join(layer, "nix/var/nix"));
      // 8 MiB Nix keeps to be able to delete when the disk is full: it makes it again.
      await fsp.rm(path.join(layer, "nix/var/nix/db/reserved"), { force: true });
      await fsp.mkdir(path.join(layer, "etc/nix"), { recursive: true, mode: 0o755 });
      await fsp.writeFile(path.join(layer, "etc/nix/nix.conf"), SANDBOX_NIX_CONF, { mode: 0o644 });
      const rec = await store.addLayer(layer, `nix-db:${key.slice(0, 16)}`);
      const tmp = `${index}.${process.pid}.tmp`;
      await fsp.writeFile(tmp, rec.digest);
      await fsp.rename(tmp, index);
      return rec.digest;
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  });
}

/**
 * A registration (`nix-store --dump-db`: per path its path, hash, size,
 * deriver, reference count and references, one a line) without the .drv
 * files and the references to them: loading a derivation's registration
 * reads the .drv itself, which the empty store being filled has not (and a
 * sandbox instantiates its own). Outputs keep their deriver's name, which
 * Nix does not check.
 */
export function withoutDerivations(reg: string): string {
  const lines = reg.split("\n");
  const out: string[] = [];
  for (let i = 0; i + 4 < lines.length; ) {
    const [p, hash, size, deriver, count] = lines.slice(i, i + 5) as [string, string, string, string, string];
    const n = Number(count);
    if (!Number.isInteger(n) || n < 0 || i + 5 + n > lines.length) throw new Error(`nix-store --dump-db printed an entry it should not have at line ${i + 1}`);
    const refs = lines.slice(i + 5, i + 5 + n).filter((r) => !r.endsWith(".drv"));
    if (!p.endsWith(".drv")) out.push(p, hash, size, deriver, String(refs.length), ...refs);
    i += 5 + n;
  }
  return out.length ? `${out.join("\n")}\n` : "";
}
