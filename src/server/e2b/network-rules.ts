import { InvalidArgumentError } from "../../core/errors.js";
import { networkPolicy, type NetworkInput, type ResolvedNetworkField } from "../../core/network-spec.js";
import { E2bUnsupportedError } from "./errors.js";

/** E2B's "all traffic" selector (the SDK's ALL_TRAFFIC). */
export const ALL_TRAFFIC = "0.0.0.0/0";

/** What E2B's create and updateNetwork say of egress, read from a request body. */
export interface E2bEgress {
  readonly allowOut?: readonly string[];
  readonly denyOut?: readonly string[];
}

/**
 * E2B's `network` object of a create, checked: allowOut and denyOut are
 * mapped (egressFor), allowPublicTraffic false is corral's way already;
 * what corral does not do is refused by name (501), never dropped.
 */
export function readCreateNetwork(v: unknown): E2bEgress | undefined {
  if (v === undefined || v === null) return undefined;
  const n = object(v, "network");
  const why: string[] = [];
  if (n["rules"] !== undefined && Object.keys(object(n["rules"], "network.rules")).length) why.push("network.rules (per-host request transforms: corral has no egress proxy)");
  if (n["egressProxy"] != null) why.push("network.egressProxy (no egress proxy)");
  if (n["maskRequestHost"] !== undefined) why.push("network.maskRequestHost (port URLs keep corral's host form)");
  if (n["httpsPorts"] !== undefined) why.push("network.httpsPorts (port URLs are plain HTTP on corrald's port)");
  // corral's port URLs need the tenant's key or the sandbox's traffic token (trafficAccessToken).
  if (n["allowPublicTraffic"] === true) why.push("network.allowPublicTraffic: true (a port URL needs the key or the sandbox's trafficAccessToken)");
  if (why.length) throw new E2bUnsupportedError(`corral cannot create this sandbox: ${why.join("; ")}`);
  return readEgress(n, "network");
}

/** allowOut and denyOut of a body (create's network, or updateNetwork's whole body). */
export function readEgress(n: Record<string, unknown>, where: string): E2bEgress | undefined {
  const allowOut = strings(n["allowOut"], `${where}.allowOut`);
  const denyOut = strings(n["denyOut"], `${where}.denyOut`);
  if (!allowOut && !denyOut) return undefined;
  return { ...(allowOut ? { allowOut } : {}), ...(denyOut ? { denyOut } : {}) };
}

/**
 * corral's network for E2B's internet access and egress lists. In E2B
 * allowOut wins over denyOut, and no internet access is denyOut of all
 * traffic. So: everything denied (ALL_TRAFFIC, or no internet) with an
 * allowOut is corral's allow list; a partial denyOut is corral's deny
 * list; allowOut as exceptions carved out of a partial denyOut has no
 * corral form (corral's deny wins) and is refused; allowOut with nothing
 * denied changes nothing, as in E2B. No internet and no allowOut is
 * corral's "none" (loopback only). Rules are checked as corral's (names,
 * *.domain, IPv4 CIDRs) by the spec, each by its field path.
 */
export function egressFor(internet: boolean, e: E2bEgress | undefined): NetworkInput {
  const allowOut = e?.allowOut ?? [];
  const denyOut = e?.denyOut ?? [];
  const denyAll = !internet || denyOut.includes(ALL_TRAFFIC);
  if (denyAll) return allowOut.length ? { mode: "nat", egress: { allow: [...allowOut], deny: [] } } : internet ? { mode: "nat", egress: { allow: [], deny: [] } } : "none";
  if (allowOut.length && denyOut.length) {
    throw new E2bUnsupportedError("allowOut as exceptions to a partial denyOut has no corral form (corral's deny list wins): deny all traffic (ALL_TRAFFIC) and list what is allowed, or list only what is denied");
  }
  return denyOut.length ? { mode: "nat", egress: { deny: [...denyOut] } } : "nat";
}

/** E2B's `network` of a sandbox's detail, from corral's policy: undefined for no network. */
export function e2bNetworkOf(n: ResolvedNetworkField): { allowOut: string[]; denyOut: string[] } | undefined {
  const p = networkPolicy(n);
  if (p.mode === "none") return undefined;
  return p.allow !== undefined ? { allowOut: [...p.allow], denyOut: [ALL_TRAFFIC] } : { allowOut: [], denyOut: [...p.deny] };
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new InvalidArgumentError(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function strings(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new InvalidArgumentError(`${what} must be a list of strings`);
  return v as string[];
}
