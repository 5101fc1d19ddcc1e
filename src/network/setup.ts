import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { HostError, InvalidArgumentError } from "../core/errors.js";
import { AddressRange, overlaps, parseCidr } from "./ipv4.js";
import { slotMac, type NetNames } from "./names.js";
import type { NetHost } from "./net-host.js";
import { baseTables, deleteTables } from "./nft-rules.js";
import type { ResolverProcess } from "./resolver-process.js";

/** What setting a state dir's network up and down takes. */
export interface NetworkSetup {
  readonly stateDir: string;
  readonly netDir: string;
  readonly names: NetNames;
  readonly host: NetHost;
  readonly resolver: ResolverProcess;
  /** The range to set up with (--net-range). */
  readonly rangeText: string;
  readonly dnsUpstream: readonly string[] | undefined;
}

/** Whether the network is up (its config and bridge are there); a dead resolver is started again. */
export async function isUp(s: NetworkSetup): Promise<boolean> {
  if (!fs.existsSync(path.join(s.netDir, "config.json")) || !(await s.host.links()).includes(s.names.bridge)) return false;
  await s.resolver.ensure();
  return true;
}

/**
 * The bridge (the gateway's address, a fixed MAC), both tables, IPv4
 * forwarding and the resolver; whatever a crash left of an earlier one is
 * taken down first. The range is checked against the host's routes.
 */
export async function networkUp(s: NetworkSetup): Promise<AddressRange> {
  await networkDown(s);
  const range = new AddressRange(s.rangeText);
  await checkRange(s, range);
  await fsp.mkdir(s.netDir, { recursive: true, mode: 0o700 });
  const upstream = s.dnsUpstream ?? envList("CORRAL_DNS_UPSTREAM") ?? (await hostNameservers());
  if (!upstream.length) throw new HostError("no DNS server to forward to: the host's /etc/resolv.conf names none (set --dns-upstream)");
  const br = s.names.bridge;
  const bridgeMac = slotMac(s.names.tag, -1);
  await s.host.ip([`link add ${br} address ${bridgeMac} type bridge`, `addr add ${range.gateway}/${range.prefix} dev ${br}`, `link set ${br} up`]);
  await fsp.writeFile(`/proc/sys/net/ipv6/conf/${br}/disable_ipv6`, "1\n").catch(() => {});
  const t = s.names.table;
  await s.host.nft(`add table inet ${t}\nadd table bridge ${t}\n${deleteTables(s.names)}${baseTables({ names: s.names, range, bridgeMac })}`);
  await s.host.enableForwarding();
  await fsp.writeFile(path.join(s.netDir, "config.json"), JSON.stringify({ range: range.text, gateway: range.gateway }));
  await s.resolver.start({ stateDir: s.stateDir, listen: range.gateway, upstream: [...upstream] });
  return range;
}

/** The resolver, the tables and the bridge, whichever exist. */
export async function networkDown(s: NetworkSetup): Promise<void> {
  await s.resolver.stop();
  const t = s.names.table;
  await s.host.nft(`add table inet ${t}\nadd table bridge ${t}\n${deleteTables(s.names)}`).catch(() => {});
  if ((await s.host.links()).includes(s.names.bridge)) await s.host.ip([`link delete ${s.names.bridge}`]);
  await fsp.rm(path.join(s.netDir, "config.json"), { force: true });
}

/** The range must not overlap a route the host has (other than this state dir's own bridge). */
async function checkRange(s: NetworkSetup, range: AddressRange): Promise<void> {
  for (const r of await s.host.routes()) {
    const c = parseCidr(r.dst === "default" ? "0.0.0.0/0" : r.dst);
    if (!c || c.prefix === 0 || r.dev === s.names.bridge) continue;
    if (overlaps(c, range.cidr)) {
      throw new InvalidArgumentError(`the sandbox address range ${range.text} overlaps the host's route to ${r.dst} (dev ${r.dev}); choose another with --net-range`);
    }
  }
}

function envList(name: string): string[] | undefined {
  const v = process.env[name];
  return v ? v.split(",").map((x) => x.trim()).filter(Boolean) : undefined;
}

/** IPv4 nameservers of the host's /etc/resolv.conf. */
async function hostNameservers(): Promise<string[]> {
  const text = await fsp.readFile("/etc/resolv.conf", "utf8").catch(() => "");
  return [...text.matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!);
}
