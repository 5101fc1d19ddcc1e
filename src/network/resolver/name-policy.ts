import { parseEgressRule } from "../../core/network-spec.js";
import type { SlotRecord } from "../slot-files.js";

/**
 * What corral's resolver says to one sandbox about one name: a local
 * answer (its own name, a peer on a named network it shares), refused (its
 * policy does not allow the name), or forwarded upstream.
 */
export type NameVerdict = { kind: "local"; address: string } | { kind: "refuse" } | { kind: "forward"; record: boolean };

function matches(name: string, rules: readonly string[]): boolean {
  for (const text of rules) {
    const r = parseEgressRule(text);
    if (r.kind !== "name") continue;
    if (r.wildcard ? name.endsWith(`.${r.name}`) : name === r.name) return true;
  }
  return false;
}

/**
 * `name` (lowercase, no trailing dot) asked by the sandbox of `client`,
 * given every slot of the state dir. Deny rules win over allow rules; with
 * an allow list, only its names are looked up, and what they resolve to is
 * recorded (`record`) as allowed for the answer's TTL.
 */
export function nameVerdict(name: string, client: SlotRecord, slots: readonly SlotRecord[]): NameVerdict {
  if (name === client.name) return { kind: "local", address: client.address };
  if (client.policy.networks.length) {
    const shared = new Set(client.policy.networks);
    const peer = slots.find((s) => s.name === name && s.tenant === client.tenant && s.id !== client.id && s.policy.networks.some((n) => shared.has(n)));
    if (peer) return { kind: "local", address: peer.address };
  }
  if (matches(name, client.policy.deny)) return { kind: "refuse" };
  const allow = client.policy.allow;
  if (allow === undefined) return { kind: "forward", record: false };
  return matches(name, allow) ? { kind: "forward", record: true } : { kind: "refuse" };
}
