import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { BackendKind, SandboxBackend } from "../backends/backend.js";
import { openBackends } from "../backends/registry.js";
import { HostError } from "../core/errors.js";
import { realHost } from "../host/host.js";
import { nativeBinary } from "../host/native.js";
import { Networks, type NetworkOptions } from "../network/networks.js";
import { Store } from "../store/store.js";
import type { RuntimeHost, StateDirParts } from "./context.js";
import { openDatabase } from "./db.js";
import { rangeBase, UID_RANGE, UID_SLOTS } from "./uid-ranges.js";
import { DEFAULT_STATE_DIR, StateDirLock } from "./state-dir-lock.js";
import { HostClaims } from "./host-claims.js";

export { DEFAULT_STATE_DIR };
/**
 * Host uid of root inside every sandbox: inside the range systemd sets
 * aside for containers (524288-1879048191), away from /etc/subuid's usual
 * 100000+ allocations.
 */
export const DEFAULT_UID_BASE = 0x60000000;

/** The allowed share directories of `opts`, or of $CORRAL_ALLOW_SHARES. */
export function allowedSharesOf(opts: SandboxesOptions): readonly string[] {
  return opts.allowedShares ?? (process.env["CORRAL_ALLOW_SHARES"] ?? "").split(":").filter(Boolean);
}

export interface SandboxesOptions {
  readonly stateDir?: string;
  readonly uidBase?: number;
  /**
   * Parent cgroup for all sandboxes of this state dir: this, else
   * $CORRAL_CGROUP_PARENT, else the one the state dir recorded when first
   * opened (cgroupParentOf).
   */
  readonly cgroupParent?: string;
  /**
   * Take the state dir's daemon lock (state-dir-lock.ts) for as long as
   * it is open: the daemon. A second one is refused (ConflictError).
   */
  readonly lock?: boolean;
  /**
   * A long-lived process (the daemon, a benchmark standing in for it):
   * keeps a VM shim started ahead of need (~0.1 s off each VM start) and
   * one agent connection per sandbox for its commands (~0.5 ms off each).
   * A one-shot CLI process wants neither.
   */
  readonly longLived?: boolean;
  /**
   * Host directories sandboxes may see through `shares` (runtime/shares.ts);
   * default $CORRAL_ALLOW_SHARES (':'-separated), else none.
   */
  readonly allowedShares?: readonly string[];
  /** Sandbox networking: the address range, the resolver's upstream servers (network/networks.ts). */
  readonly network?: NetworkOptions;
}

/** Sandboxes over backends the caller made (a fake in unit tests: no root, nothing on the host). */
export interface InjectedOptions extends SandboxesOptions {
  readonly stateDir: string;
  readonly backends: ReadonlyMap<BackendKind, SandboxBackend>;
  /** Default: the real host (reconcile asks it whether creators live and which cgroups exist). */
  readonly host?: RuntimeHost;
}

/** The state dir, store and database every way of opening shares. */
async function openCommon(opts: SandboxesOptions & { stateDir: string; claims?: HostClaims }): Promise<Omit<StateDirParts, "backends" | "host">> {
  const stateDir = path.resolve(opts.stateDir);
  const uidBase = opts.uidBase ?? DEFAULT_UID_BASE;
  // Every sandbox's range (runtime/uid-ranges.ts) must be a valid uid, below (uid_t)-1.
  if (!Number.isInteger(uidBase) || uidBase < UID_RANGE || rangeBase(uidBase, UID_SLOTS) > 0xffffffff) {
    throw new HostError(`uid base ${uidBase} leaves no room for ${UID_SLOTS} sandbox uid ranges of ${UID_RANGE} below 2^32-1`);
  }
  await fsp.mkdir(stateDir, { recursive: true, mode: 0o711 });
  await fsp.chmod(stateDir, 0o711);
  const lock = opts.lock ? StateDirLock.acquire(stateDir) : undefined;
  try {
    const cgroupParent = await cgroupParentOf(stateDir, opts.cgroupParent ?? process.env["CORRAL_CGROUP_PARENT"], opts.claims);
    const store = new Store(path.join(stateDir, "store"), uidBase);
    await store.init();
    await fsp.mkdir(path.join(stateDir, "sandboxes"), { recursive: true, mode: 0o711 });
    const db = openDatabase(path.join(stateDir, "corral.db"));
    return { stateDir, uidBase, cgroupParent, store, db, longLived: opts.longLived ?? false, ...(lock ? { lock } : {}) };
  } catch (e) {
    lock?.release();
    throw e;
  }
}

/** The cgroup parent every corral release before the state dir recorded its own; shared by all state dirs. */
export const LEGACY_CGROUP_PARENT = "corral";

/**
 * The state dir's cgroup parent, recorded in `<state>/cgroup-parent`: the
 * one given, else the recorded one, else for a new state dir
 * `corral-<12 hex of sha256(real path)>`, its own. Before, every state dir
 * defaulted to `corral`, and a reconcile in one destroyed the other's
 * sandboxes (issue 18: 20 of 20); a state dir that has a database but no
 * record is from then and keeps `corral`, where its sandboxes are
 * (reconcile.ts then removes only cgroups it has a trace of).
 */
export async function cgroupParentOf(stateDir: string, given: string | undefined, claims?: HostClaims): Promise<string> {
  const file = path.join(stateDir, "cgroup-parent");
  const recorded = (await fsp.readFile(file, "utf8").catch(() => "")).trim() || undefined;
  const parent =
    given ?? recorded ?? (fs.existsSync(path.join(stateDir, "corral.db")) ? LEGACY_CGROUP_PARENT : derivedCgroupParent(stateDir));
  const record = () => {
    if (parent === recorded) return;
    fs.writeFileSync(`${file}.${process.pid}`, `${parent}\n`);
    fs.renameSync(`${file}.${process.pid}`, file);
  };
  // The legacy parent is shared by design (reconcile removes only what it has a trace of there).
  if (claims && parent !== LEGACY_CGROUP_PARENT) claims.claimCgroupParent(parent, fs.realpathSync(stateDir), record);
  else record();
  return parent;
}

/** The cgroup parent a state dir gets by default: a name only its real path gives. */
export function derivedCgroupParent(stateDir: string): string {
  return `corral-${createHash("sha256").update(fs.realpathSync(stateDir)).digest("hex").slice(0, 12)}`;
}

/**
 * Opens a state dir on this host: corral needs root (namespaces, mounts,
 * cgroups), puts the agent binary in the store (bind-mounted into
 * containers, packed into VM initramfs) and makes one backend of each kind
 * from the registry.
 */
export async function openStateDir(opts: SandboxesOptions = {}): Promise<StateDirParts> {
  if (process.getuid?.() !== 0) throw new HostError("corral needs root (it creates namespaces, mounts and cgroups)");
  // What this host's state dirs must not share (host-claims.ts); injected opens (unit tests over fakes) touch no host.
  // Kept open: sandbox creates claim more uid blocks from it.
  const claims = HostClaims.open();
  let common: Awaited<ReturnType<typeof openCommon>>;
  try {
    claims.forgetGone();
    common = await openCommon({ ...opts, stateDir: opts.stateDir ?? process.env["CORRAL_STATE_DIR"] ?? DEFAULT_STATE_DIR, claims });
  } catch (e) {
    claims.close();
    throw e;
  }
  const { stateDir, store, uidBase, cgroupParent, longLived } = common;
  try {
    const slots = common.db.prepare("SELECT uid_slot FROM sandboxes WHERE uid_slot IS NOT NULL").pluck().all() as number[];
    claims.claimUids(fs.realpathSync(stateDir), uidBase, slots);
    const agentDir = await store.addBinary(nativeBinary("corral-agent"), "corral-agent").catch((e: NodeJS.ErrnoException) => {
      throw new HostError(`the agent binary is missing (${e.message}); run npm run build`);
    });
    const backends = openBackends({ stateDir, store, uidBase, cgroupParent, agentDir, longLived });
    return { ...common, backends, host: realHost, net: new Networks(stateDir, opts.network), claims };
  } catch (e) {
    common.db.close();
    common.lock?.release();
    claims.close();
    throw e;
  }
}

/** Opens a state dir over injected backends: no root needed, nothing registered in the store. */
export async function openInjected(opts: InjectedOptions): Promise<StateDirParts> {
  const common = await openCommon(opts);
  return { ...common, backends: opts.backends, host: opts.host ?? realHost };
}
