import { z } from "zod";

/**
 * A sandbox's network, as the spec gives it: "none" (loopback only, the
 * default), "nat" (outbound access through corral's bridge, with the
 * always-dropped destinations of docs/networking.md), or an object for
 * anything more: an egress policy, named networks, exposed ports.
 */

/** Names of named networks and of sandboxes on them: DNS labels. */
const NETWORK_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL = "[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?";
const HOSTNAME = new RegExp(`^(\\*\\.)?(${LABEL}\\.)*${LABEL}$`, "i");
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** At most this many egress rules of each kind, named networks and ports (nftables sets stay small). */
export const MAX_EGRESS_RULES = 256;
export const MAX_NETWORKS = 16;
export const MAX_PORTS = 64;

/** An egress rule: an IPv4 address or CIDR, a hostname, or `*.domain` (the domain's subdomains). */
export type EgressRule = { kind: "cidr"; cidr: string } | { kind: "name"; name: string; wildcard: boolean };

/** Why a rule is not one, or undefined when it is. */
export function egressRuleProblem(rule: string): string | undefined {
  const [addr, len, more] = rule.split("/");
  if (addr !== undefined && IPV4.test(addr)) {
    if (more !== undefined) return `${JSON.stringify(rule)} is not a CIDR`;
    if (len !== undefined && !(/^\d{1,2}$/.test(len) && Number(len) <= 32)) return `${JSON.stringify(rule)}: a prefix length is 0 to 32`;
    return undefined;
  }
  if (rule.includes(":")) return `${JSON.stringify(rule)}: sandboxes have IPv4 only, so IPv6 rules mean nothing yet`;
  if (rule.length > 253 || !HOSTNAME.test(rule) || /^[\d.]+$/.test(rule.replace(/^\*\./, ""))) {
    return `${JSON.stringify(rule)} is neither an IPv4 address or CIDR, a hostname, nor *.domain`;
  }
  return undefined;
}

/** A rule in its canonical form: CIDRs with their prefix, names lowercase. */
export function parseEgressRule(rule: string): EgressRule {
  if (/^[\d.]+(\/\d+)?$/.test(rule)) return { kind: "cidr", cidr: rule.includes("/") ? rule : `${rule}/32` };
  const name = rule.toLowerCase();
  return name.startsWith("*.") ? { kind: "name", name: name.slice(2), wildcard: true } : { kind: "name", name, wildcard: false };
}

const rule = z.string().superRefine((v, ctx) => {
  const problem = egressRuleProblem(v);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

const port = z.number().int("a port is a whole number").min(1, "a port is 1 to 65535").max(65535, "a port is 1 to 65535");

const egress = z
  .object({
    /** Absent: every destination but the always-dropped ones. Present (even empty): only these. */
    allow: z.array(rule).max(MAX_EGRESS_RULES).optional(),
    deny: z.array(rule).max(MAX_EGRESS_RULES).default([]),
  })
  .strict();

export const NetworkObjectSchema = z
  .object({
    mode: z.enum(["none", "nat"]).default("nat"),
    egress: egress.prefault({}),
    /** Named networks of the sandbox's tenant it joins: their members reach each other by name, on every port. */
    networks: z.array(z.string().regex(NETWORK_NAME, "a network name is 1-63 lowercase letters, digits or '-'")).max(MAX_NETWORKS).default([]),
    /** Ports the daemon serves at http://PORT-ID.DOMAIN:DAEMONPORT/; public ones without a key or token. */
    ports: z
      .array(z.union([port, z.object({ port, public: z.boolean().default(false) }).strict()]))
      .max(MAX_PORTS)
      .default([]),
  })
  .strict()
  .superRefine((n, ctx) => {
    if (n.mode === "none") {
      if (n.egress.allow !== undefined || n.egress.deny.length) ctx.addIssue({ code: "custom", path: ["egress"], message: 'an egress policy needs mode "nat"' });
      if (n.networks.length) ctx.addIssue({ code: "custom", path: ["networks"], message: 'named networks need mode "nat"' });
    }
    const seen = new Set<number>();
    for (const [i, p] of n.ports.entries()) {
      const number = typeof p === "number" ? p : p.port;
      if (seen.has(number)) ctx.addIssue({ code: "custom", path: ["ports", i], message: `port ${number} is listed twice` });
      seen.add(number);
    }
    if (new Set(n.networks).size !== n.networks.length) ctx.addIssue({ code: "custom", path: ["networks"], message: "a network is listed twice" });
  });

/** The spec's `network`: one word for the common cases, an object for the rest. */
export const NetworkSchema = z.union([z.enum(["none", "nat"]), NetworkObjectSchema]).default("none");

export type NetworkInput = z.input<typeof NetworkSchema>;
/** As a resolved spec carries it (and rows written before networks existed: "none"). */
export type ResolvedNetworkField = z.output<typeof NetworkSchema>;

/** A sandbox's network with every part spelt out. */
export interface NetworkPolicy {
  readonly mode: "none" | "nat";
  /** undefined: every destination but the always-dropped ones. */
  readonly allow: readonly string[] | undefined;
  readonly deny: readonly string[];
  readonly networks: readonly string[];
  readonly ports: readonly { readonly port: number; readonly public: boolean }[];
}

/** The network of a resolved spec, in one shape whichever form the spec used. */
export function networkPolicy(n: ResolvedNetworkField | undefined): NetworkPolicy {
  if (n === undefined || n === "none") return { mode: "none", allow: undefined, deny: [], networks: [], ports: [] };
  if (n === "nat") return { mode: "nat", allow: undefined, deny: [], networks: [], ports: [] };
  return {
    mode: n.mode,
    allow: n.egress.allow,
    deny: n.egress.deny,
    networks: n.networks,
    ports: n.ports.map((p) => (typeof p === "number" ? { port: p, public: false } : { port: p.port, public: p.public })),
  };
}

/** "none" or "nat": what fixes a sandbox's shape (a pool's key); the rest is applied when it is handed out. */
export function networkMode(n: ResolvedNetworkField | undefined): "none" | "nat" {
  return networkPolicy(n).mode;
}
