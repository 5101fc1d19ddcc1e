import { createHash } from "node:crypto";
import type { FixedIdentity } from "../../core/sandbox-spec.js";

/** What a microVM is known by on the host's network and vsock bus. */
export interface VmIdentity {
  /** Locally administered unicast MAC, 02:xx:xx:xx:xx:xx. */
  readonly mac: string;
  /** vsock context id: 100 + the first 24 bits of the hash (0-2 are reserved). */
  readonly cid: number;
  /** Host tap device name, at most 15 characters (IFNAMSIZ - 1). */
  readonly tap: string;
}

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * The identity derived from a sandbox name alone: the same name gives the
 * same MAC, CID and tap name on every host and after every restart (the
 * NixOS module computes the same with the same rule). `salt` > 0 is used
 * only to step past a collision (see assignIdentities).
 */
export function vmIdentity(name: string, salt = 0): VmIdentity {
  const h = digest(salt === 0 ? name : `${name}#${salt}`);
  const mac = ["02", ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
  const cid = 100 + ((h[0]! << 16) | (h[1]! << 8) | h[2]!);
  const tap = `cr${h.toString("hex").slice(0, 13)}`;
  return { mac, cid, tap };
}

/** A VM's identity: the name's, with what its spec fixes (spec `identity`) in place of the derived. */
export function identityOf(name: string, fixed: FixedIdentity | undefined): VmIdentity {
  const id = vmIdentity(name);
  return fixed ? { ...id, ...fixed } : id;
}

/**
 * The identity a VM's VMM arguments carry (what a snapshot marks and a
 * restore swaps for its own): its name's, with the network slot's tap
 * when it has one (named after the state dir and slot, not the name).
 */
export function vmIdentityOf(req: { hostname: string; spec: { identity?: FixedIdentity | undefined }; net?: { tap?: string | undefined } | undefined }): VmIdentity {
  const id = identityOf(req.hostname, req.spec.identity);
  return req.net?.tap ? { ...id, tap: req.net.tap } : id;
}

/**
 * Identities for a set of names with collisions resolved: names are taken
 * in sorted order and a name whose MAC, CID or tap is already taken tries
 * salt 1, 2, ... So the result depends only on the set of names, not on the
 * order they were created in, and a name keeps its identity unless it
 * collides with one that sorts before it.
 */
export function assignIdentities(names: Iterable<string>): Map<string, VmIdentity> {
  const out = new Map<string, VmIdentity>();
  const macs = new Set<string>();
  const cids = new Set<number>();
  const taps = new Set<string>();
  for (const name of [...new Set(names)].sort()) {
    for (let salt = 0; ; salt++) {
      const id = vmIdentity(name, salt);
      if (macs.has(id.mac) || cids.has(id.cid) || taps.has(id.tap)) continue;
      macs.add(id.mac);
      cids.add(id.cid);
      taps.add(id.tap);
      out.set(name, id);
      break;
    }
  }
  return out;
}
