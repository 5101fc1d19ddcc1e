import type { AddressRange } from "./ipv4.js";
import type { NetNames } from "./names.js";

/**
 * The nftables rules of one state dir, as `nft -f` scripts. Two tables,
 * both named after the state dir (names.ts):
 *
 * - `inet corral_TAG`: what a sandbox may send through the host. The input
 *   hook refuses everything from the bridge to the host itself but DNS to
 *   corral's resolver (every host address, the daemon's port among them,
 *   is local delivery and comes through input); the forward hook refuses
 *   connections into sandboxes and runs what sandboxes send through the
 *   always-dropped destinations, then the sandbox's own chain (chosen by
 *   its source address, which the bridge table makes unforgeable).
 * - `bridge corral_TAG`: what crosses the bridge between ports. A port may
 *   send only from its own MAC and address (ARP included: no spoofing of
 *   another sandbox or the gateway), only IPv4 and ARP, and to another
 *   port only if the two share a named network (`peers`).
 *
 * Where br_netfilter is loaded (bridge-nf-call-iptables), bridged frames
 * also pass the inet forward hook, in and out on the bridge: they were
 * judged by the bridge table already, and a routed packet can never be in
 * and out on the bridge (one for another sandbox, sent to the gateway's
 * MAC, is dropped at the bridge's prerouting), so the inet table lets them
 * by.
 *
 * Refused rather than dropped where a sandbox deserves a quick answer (a
 * connect fails at once instead of hanging); dropped for link-local and
 * multicast, where nothing should answer at all.
 */
const REFUSE = "counter reject with icmpx admin-prohibited";

export interface TableInput {
  readonly names: NetNames;
  readonly range: AddressRange;
  /** The bridge's own MAC (the gateway's): frames to it are routed by the host, not bridged. */
  readonly bridgeMac: string;
}

/** Creates both tables whole (run once, when the state dir's network is set up). */
export function baseTables({ names, range, bridgeMac }: TableInput): string {
  const br = JSON.stringify(names.bridge);
  const ports = JSON.stringify(`${names.bridge.slice(0, -2)}*`);
  const t = names.table;
  return `table inet ${t} {
  map slots { type ipv4_addr : verdict; }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    iifname ${br} ct state established,related accept
    iifname ${br} ip daddr ${range.gateway} meta l4proto { tcp, udp } th dport 53 accept comment "corral's resolver"
    iifname ${br} ${REFUSE} comment "the host's own addresses"
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifname ${br} oifname ${br} accept comment "bridged (br_netfilter): the bridge table allowed it"
    iifname ${br} jump egress
    oifname ${br} ct state established,related accept
    oifname ${br} counter drop comment "connections into sandboxes"
  }
  chain egress {
    meta nfproto ipv6 counter drop comment "IPv6: sandboxes have none"
    ip daddr 169.254.0.0/16 counter drop comment "link-local: cloud metadata"
    ip daddr 224.0.0.0/4 counter drop comment "multicast"
    ip daddr 255.255.255.255 counter drop comment "broadcast"
    ip daddr ${range.text} ${REFUSE} comment "other sandboxes"
    meta l4proto { tcp, udp } th dport { 53, 853 } ${REFUSE} comment "DNS but corral's resolver"
    ip saddr vmap @slots
    counter drop comment "an address of no sandbox"
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${range.text} oifname != ${br} masquerade
  }
}
table bridge ${t} {
  set bound { type ifname . ipv4_addr; }
  set bound_mac { type ifname . ether_addr; }
  set peers { type ifname . ifname; }
  chain prerouting {
    type filter hook prerouting priority filter - 10; policy accept;
    iifname != ${ports} accept
    iifname . ether saddr != @bound_mac counter drop comment "a MAC not the port's"
    ether type arp iifname . arp saddr ip != @bound counter drop comment "ARP for an address not the port's"
    ether type ip iifname . ip saddr != @bound counter drop comment "an address not the port's"
    ether daddr ${bridgeMac} ip daddr ${range.text} ip daddr != ${range.gateway} counter drop comment "another sandbox by way of the host"
    ether type != { ip, arp } counter drop comment "IPv4 and ARP only"
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifname ${ports} iifname . oifname != @peers counter drop comment "sandboxes meet only on named networks"
  }
}
`;
}

export function deleteTables(names: NetNames): string {
  return `delete table inet ${names.table}\ndelete table bridge ${names.table}\n`;
}

export interface SlotRules {
  readonly slot: number;
  readonly address: string;
  /** The host side of the sandbox's link: a veth end or a tap. */
  readonly port: string;
  readonly mac: string;
}

/**
 * A slot's chain and sets, its source address's jump, its port's bound
 * address and MAC. Its chain: the deny set, then established flows, then
 * the allow sets (CIDRs of the policy; addresses the resolver gave it for
 * allowed names, for their TTL), then refused. "Every destination" is
 * 0.0.0.0/0 in the allow set, so changing a policy changes elements only.
 */
export function addSlot(names: NetNames, s: SlotRules): string {
  const t = `inet ${names.table}`;
  const c = names.chain(s.slot);
  return [
    `add set ${t} ${names.allowSet(s.slot)} { type ipv4_addr; flags interval; auto-merge; }`,
    `add set ${t} ${names.resolvedSet(s.slot)} { type ipv4_addr; flags timeout; }`,
    `add set ${t} ${names.denySet(s.slot)} { type ipv4_addr; flags interval; auto-merge; }`,
    `add chain ${t} ${c}`,
    `add rule ${t} ${c} ip daddr @${names.denySet(s.slot)} ${REFUSE} comment "denied"`,
    `add rule ${t} ${c} ct state established,related accept`,
    `add rule ${t} ${c} ip daddr @${names.allowSet(s.slot)} accept`,
    `add rule ${t} ${c} ip daddr @${names.resolvedSet(s.slot)} accept`,
    `add rule ${t} ${c} ${REFUSE} comment "not allowed"`,
    `add element ${t} slots { ${s.address} : jump ${c} }`,
    `add element bridge ${names.table} bound { ${JSON.stringify(s.port)} . ${s.address} }`,
    `add element bridge ${names.table} bound_mac { ${JSON.stringify(s.port)} . ${s.mac} }`,
    "",
  ].join("\n");
}

export function deleteSlot(names: NetNames, s: SlotRules): string {
  const t = `inet ${names.table}`;
  const c = names.chain(s.slot);
  return [
    `delete element ${t} slots { ${s.address} }`,
    `flush chain ${t} ${c}`,
    `delete chain ${t} ${c}`,
    `delete set ${t} ${names.allowSet(s.slot)}`,
    `delete set ${t} ${names.resolvedSet(s.slot)}`,
    `delete set ${t} ${names.denySet(s.slot)}`,
    `delete element bridge ${names.table} bound { ${JSON.stringify(s.port)} . ${s.address} }`,
    `delete element bridge ${names.table} bound_mac { ${JSON.stringify(s.port)} . ${s.mac} }`,
    "",
  ].join("\n");
}

/**
 * A slot's egress policy, replacing the one it had in one transaction:
 * `allow` undefined is every destination; the addresses the resolver gave
 * for names of the old policy go too.
 */
export function setPolicy(names: NetNames, slot: number, allow: readonly string[] | undefined, deny: readonly string[]): string {
  const t = `inet ${names.table}`;
  const lines = [`flush set ${t} ${names.allowSet(slot)}`, `flush set ${t} ${names.resolvedSet(slot)}`, `flush set ${t} ${names.denySet(slot)}`];
  const allowed = allow === undefined ? ["0.0.0.0/0"] : allow;
  if (allowed.length) lines.push(`add element ${t} ${names.allowSet(slot)} { ${allowed.join(", ")} }`);
  if (deny.length) lines.push(`add element ${t} ${names.denySet(slot)} { ${deny.join(", ")} }`);
  return lines.join("\n") + "\n";
}

/** Addresses the resolver answered a sandbox with for an allowed name, for `seconds`. */
export function addResolved(names: NetNames, slot: number, addresses: readonly string[], seconds: number): string {
  if (!addresses.length) return "";
  const s = Math.max(1, Math.ceil(seconds));
  return `add element inet ${names.table} ${names.resolvedSet(slot)} { ${addresses.map((a) => `${a} timeout ${s}s`).join(", ")} }\n`;
}

/** Port pairs that may exchange frames (both directions of each pair). */
export function peerElements(names: NetNames, op: "add" | "delete", pairs: readonly (readonly [string, string])[]): string {
  if (!pairs.length) return "";
  const els = pairs.flatMap(([a, b]) => [`${JSON.stringify(a)} . ${JSON.stringify(b)}`, `${JSON.stringify(b)} . ${JSON.stringify(a)}`]);
  return `${op} element bridge ${names.table} peers { ${els.join(", ")} }\n`;
}
