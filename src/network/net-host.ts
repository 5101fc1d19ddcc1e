import fsp from "node:fs/promises";
import { runCommand } from "../host/command.js";

/**
 * The host effects of corral's networking, in one narrow seam: iproute2's
 * `ip` (links, namespaces, addresses, routes), `nft` scripts, the host's
 * routes and the forwarding switch. A fake stands in for unit tests; the
 * functional suite runs the real one.
 */
export interface NetHost {
  /** `ip -batch -` with these lines, in network namespace `netns` when given. */
  ip(lines: readonly string[], netns?: string): Promise<void>;
  /** `ip -force -batch -`: every line tried, failures (a link already gone) ignored. */
  ipEach(lines: readonly string[]): Promise<void>;
  /** `nft -f -` with this script (one transaction: all of it or nothing). */
  nft(script: string): Promise<void>;
  /** `nft` with arguments, its output (lists). */
  nftList(args: readonly string[]): Promise<string>;
  /** Destinations of every route of the host's own namespace (ip -j route show table all), as CIDR text. */
  routes(): Promise<{ dst: string; dev: string }[]>;
  /** Names of the links of the host's namespace. */
  links(): Promise<string[]>;
  /** Names of the namespaces in /run/netns. */
  namespaces(): Promise<string[]>;
  /** Turns IPv4 forwarding on (masquerade needs it); whether it was off. */
  enableForwarding(): Promise<boolean>;
}

const NETNS_DIR = "/run/netns";

async function ip(lines: readonly string[], netns?: string): Promise<void> {
  if (!lines.length) return;
  await runCommand("ip", [...(netns ? ["-n", netns] : []), "-batch", "-"], { input: lines.join("\n") + "\n" });
}

export const realNetHost: NetHost = {
  ip,
  async ipEach(lines) {
    if (lines.length) await runCommand("ip", ["-force", "-batch", "-"], { input: lines.join("\n") + "\n", allowFailure: true });
  },
  async nft(script) {
    if (script.trim()) await runCommand("nft", ["-f", "-"], { input: script });
  },
  async nftList(args) {
    return (await runCommand("nft", args)).stdout;
  },
  async routes() {
    const out = (await runCommand("ip", ["-j", "route", "show", "table", "all"])).stdout;
    const rows = JSON.parse(out || "[]") as { dst?: string; dev?: string; type?: string }[];
    return rows.filter((r) => r.dst && r.type !== "local" && r.type !== "broadcast").map((r) => ({ dst: r.dst!, dev: r.dev ?? "" }));
  },
  async links() {
    return fsp.readdir("/sys/class/net");
  },
  async namespaces() {
    return fsp.readdir(NETNS_DIR).catch(() => []);
  },
  async enableForwarding() {
    const file = "/proc/sys/net/ipv4/ip_forward";
    if ((await fsp.readFile(file, "utf8")).trim() === "1") return false;
    await fsp.writeFile(file, "1\n");
    return true;
  },
};

/** Where `ip netns` keeps a namespace a process may join (setns) by path. */
export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}
