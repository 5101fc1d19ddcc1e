import { createHash } from "node:crypto";
import path from "node:path";

/**
 * The names of everything corral makes on the host's network for one state
 * dir, all carrying a tag derived from the state dir's path, so two state
 * dirs on one host never touch each other's objects and reconcile finds
 * every one of its own by name. Interface names fit IFNAMSIZ (15
 * characters): "crl" + 6 hex + a kind letter + at most 5 digits.
 */
export const LINK_PREFIX = "crl";
export const NETNS_PREFIX = "corral-";
export const TABLE_PREFIX = "corral_";

export interface NetNames {
  /** 6 hex digits of sha256(state dir). */
  readonly tag: string;
  /** The bridge every sandbox port of the state dir is on. */
  readonly bridge: string;
  /** The nftables tables (one `inet`, one `bridge`). */
  readonly table: string;
  /** A container slot's network namespace (`ip netns` name, /run/netns/NAME). */
  netns(slot: number): string;
  /** The host end of a container slot's veth pair. */
  veth(slot: number): string;
  /** The sandbox's end while it waits on the host (it becomes eth0 in the container). */
  peer(slot: number): string;
  /** A VM slot's tap device. */
  tap(slot: number): string;
  /** The per-slot chain and sets of the inet table. */
  chain(slot: number): string;
  allowSet(slot: number): string;
  resolvedSet(slot: number): string;
  denySet(slot: number): string;
  /** The slot of one of this state dir's link or netns names, or undefined. */
  slotOf(name: string): number | undefined;
}

export function stateDirTag(stateDir: string): string {
  return createHash("sha256").update(path.resolve(stateDir)).digest("hex").slice(0, 6);
}

export function netNames(stateDir: string): NetNames {
  const tag = stateDirTag(stateDir);
  const link = `${LINK_PREFIX}${tag}`;
  const ns = `${NETNS_PREFIX}${tag}-`;
  return {
    tag,
    bridge: `${link}br`,
    table: `${TABLE_PREFIX}${tag}`,
    netns: (slot) => `${ns}${slot}`,
    veth: (slot) => `${link}v${slot}`,
    peer: (slot) => `${link}p${slot}`,
    tap: (slot) => `${link}t${slot}`,
    chain: (slot) => `sb_${slot}`,
    allowSet: (slot) => `allow_${slot}`,
    resolvedSet: (slot) => `resolved_${slot}`,
    denySet: (slot) => `deny_${slot}`,
    slotOf(name) {
      const m = name.startsWith(ns) ? /^(\d{1,5})$/.exec(name.slice(ns.length)) : name.startsWith(link) ? /^[vtp](\d{1,5})$/.exec(name.slice(link.length)) : null;
      return m ? Number(m[1]) : undefined;
    },
  };
}

/** A container port's MAC: locally administered, unicast, from the tag and slot. */
export function slotMac(tag: string, slot: number): string {
  const h = createHash("sha256").update(`${tag}/${slot}`).digest();
  return ["02", ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}
