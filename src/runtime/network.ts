import { ConflictError } from "../core/errors.js";
import { networkMode, type NetworkInput } from "../core/network-spec.js";
import { parseSpec, type ResolvedSpec } from "../core/sandbox-spec.js";
import type { RuntimeContext } from "./context.js";
import { recordEvent } from "./db.js";
import type { SandboxRecord } from "./records.js";

/**
 * A running sandbox's network changed: its egress policy, named networks
 * and ports, in force at once (nftables elements and the resolver's view
 * change; nothing restarts). The mode stays: a sandbox made without a
 * network has no link to add one to, and one with a network keeps it.
 */
export async function setNetwork(rt: RuntimeContext, r: SandboxRecord, network: NetworkInput): Promise<SandboxRecord> {
  // The whole spec is checked again, so a mistake names its field (network.egress.allow.0 ...).
  const spec: ResolvedSpec = { ...r.spec, network: parseSpec({ ...r.spec, name: undefined, network }).network };
  if (networkMode(spec.network) !== networkMode(r.spec.network)) {
    throw new ConflictError(`sandbox "${r.name}" has network mode "${networkMode(r.spec.network)}"; a running sandbox keeps its mode (make a new one for "${networkMode(spec.network)}")`);
  }
  if (networkMode(spec.network) === "nat") await rt.parts.net?.update(r.id, { tenant: r.tenant, name: r.name, network: spec.network });
  rt.rows.setSpec(r.id, spec, r.expiresAt);
  recordEvent(rt.db, { tenant: r.tenant, sandbox: r.id, type: "network_set" });
  return { ...r, spec };
}
