import fs from "node:fs";
import path from "node:path";
import { networkPolicy, parseEgressRule, type NetworkPolicy, type ResolvedNetworkField } from "../core/network-spec.js";
import { procStat } from "../host/process.js";
import { AddressRange } from "./ipv4.js";
import { netNames, slotMac, type NetNames } from "./names.js";
import { realNetHost, type NetHost } from "./net-host.js";
import { addSlot, deleteSlot, peerElements, setPolicy } from "./nft-rules.js";
import { isUp, networkDown, networkUp, type NetworkSetup } from "./setup.js";
import { ResolverProcess } from "./resolver-process.js";
import { SlotFiles, type SlotRecord } from "./slot-files.js";

/** The default range of sandbox addresses (a /16 of 10/8 rarely routed on hosts; `--net-range` changes it). */
export const DEFAULT_RANGE = "10.213.0.0/16";

export interface NetworkOptions {
  /** IPv4 CIDR sandbox addresses come from (default $CORRAL_NET_RANGE or DEFAULT_RANGE). */
  readonly range?: string;
  /** DNS servers the resolver forwards to, "ADDR" or "ADDR:PORT" (default $CORRAL_DNS_UPSTREAM, else /etc/resolv.conf's). */
  readonly dnsUpstream?: readonly string[];
  /**
   * Container slots (address, chain, sets) a long-lived process keeps
   * made ahead of need once the network is up, so a create runs no nft
   * (default 0; corrald keeps 4).
   */
  readonly spares?: number;
}

export interface AttachRequest {
  readonly id: string;
  readonly tenant: string;
  readonly name: string;
  readonly kind: "container" | "vm";
  readonly network: ResolvedNetworkField;
  /** A VM's MAC (backends/vm/identity.ts, from its name); containers get one from the slot. */
  readonly mac?: string;
}

/** What a backend needs to put a sandbox on the network. */
export interface NetAttachment {
  readonly slot: number;
  readonly address: string;
  readonly prefix: number;
  readonly gateway: string;
  /** The resolver's address (the gateway). */
  readonly dns: string;
  readonly mac: string;
  /**
   * A container's link, made once the container runs (container-link.ts):
   * a veth pair, `port` on `bridge`, eth0 (with the attachment's MAC)
   * inside the container's own network namespace.
   */
  readonly container?: { readonly port: string; readonly bridge: string };
  /** A VM's tap device. */
  readonly tap?: string;
}

/**
 * The networking of one state dir: a bridge, two nftables tables, a
 * resolver process, and a slot (address, link, rules) per sandbox with
 * `network` other than "none". Set up when the first slot is taken and
 * taken down when the last goes, so a state dir without networked
 * sandboxes leaves nothing on the host. Every object is named after the
 * state dir (names.ts): reconcile finds its own, and nothing else.
 */
export class Networks {
  readonly names: NetNames;
  readonly netDir: string;
  private readonly slots: SlotFiles;
  private readonly setup: NetworkSetup;
  private readonly rangeText: string;
  private rangeCache: AddressRange | undefined;

  constructor(
    readonly stateDir: string,
    private readonly o: NetworkOptions = {},
    private readonly host: NetHost = realNetHost,
  ) {
    this.names = netNames(stateDir);
    this.netDir = path.join(stateDir, "net");
    this.slots = new SlotFiles(this.netDir);
    this.rangeText = o.range ?? process.env["CORRAL_NET_RANGE"] ?? DEFAULT_RANGE;
    const resolver = new ResolverProcess(this.netDir, stateDir);
    this.setup = { stateDir, netDir: this.netDir, names: this.names, host, resolver, rangeText: this.rangeText, dnsUpstream: o.dnsUpstream };
    new AddressRange(this.rangeText); // a bad range is refused when the state dir opens; its routes are checked at set-up
  }

  /** The range in force: the one the state dir's network was set up with while it is up, else the configured one. */
  get range(): AddressRange {
    if (!this.rangeCache) {
      let text = this.rangeText;
      try {
        text = (JSON.parse(fs.readFileSync(path.join(this.netDir, "config.json"), "utf8")) as { range: string }).range;
      } catch {
        // Not set up.
      }
      this.rangeCache = new AddressRange(text);
    }
    return this.rangeCache;
  }

  /** Puts a sandbox on the network: a slot, its link, its rules and its policy. Undone on failure. */
  async attach(req: AttachRequest): Promise<NetAttachment> {
    const policy = networkPolicy(req.network);
    const spare = req.kind === "container" ? this.mySpares.shift() : undefined;
    if (spare) return this.claimSpare(spare, req, policy);
    const rec = await this.slots.locked(async () => {
      await this.ensureUp();
      const range = this.range;
      const r = await this.slots.reserve(range.slots, (slot) => ({
        slot,
        address: range.address(slot),
        mac: req.mac ?? slotMac(this.names.tag, slot),
        kind: req.kind,
        port: req.kind === "vm" ? this.names.tap(slot) : this.names.veth(slot),
        id: req.id,
        tenant: req.tenant,
        name: req.name,
        policy: { allow: policy.allow, deny: policy.deny, networks: policy.networks },
      }));
      return r;
    });
    try {
      await this.makeLink(rec);
      await this.host.nft(addSlot(this.names, rec) + this.policyScript(rec.slot, policy));
      if (policy.networks.length) await this.slots.locked(() => this.joinPeers(rec));
    } catch (e) {
      await this.release(rec);
      throw e;
    }
    this.refill();
    return this.attachmentOf(rec);
  }

  /** A spare becomes the sandbox's: its record, and only what differs from a spare's (every destination, no network). */
  private async claimSpare(spare: SlotRecord, req: AttachRequest, policy: NetworkPolicy): Promise<NetAttachment> {
    const { spare: _made, ...slot } = spare;
    const rec: SlotRecord = { ...slot, id: req.id, tenant: req.tenant, name: req.name, policy: { allow: policy.allow, deny: policy.deny, networks: policy.networks } };
    try {
      await this.slots.write(rec);
      if (policy.allow !== undefined || policy.deny.length) await this.host.nft(this.policyScript(rec.slot, policy));
      if (policy.networks.length) await this.slots.locked(() => this.joinPeers(rec));
    } catch (e) {
      await this.release(rec);
      throw e;
    }
    this.refill();
    return this.attachmentOf(rec);
  }

  /** Spares this process made, ready to be claimed. */
  private readonly mySpares: SlotRecord[] = [];
  private refilling = false;
  private closed = false;

  /**
   * Makes spares up to the target, one at a time, in the background (a
   * refill never delays the create that claimed one). Only once the
   * network is up: a state dir that never had a networked sandbox gets
   * none.
   */
  private refill(): void {
    const target = this.o.spares ?? 0;
    if (this.refilling || this.closed || this.mySpares.length >= target) return;
    this.refilling = true;
    void (async () => {
      try {
        // Off the path of the create that took one: it is still starting its container.
        await new Promise((r) => setTimeout(r, 50));
        while (!this.closed && this.mySpares.length < target) {
          const me = { pid: process.pid, startTime: procStat(process.pid)?.startTime ?? 0 };
          const rec = await this.slots.locked(async () => {
            if (!(await isUp(this.setup))) return undefined;
            const range = this.range;
            return this.slots.reserve(range.slots, (slot) => ({
              slot,
              address: range.address(slot),
              mac: slotMac(this.names.tag, slot),
              kind: "container",
              port: this.names.veth(slot),
              id: "",
              tenant: "",
              name: "",
              policy: { allow: undefined, deny: [], networks: [] },
              spare: me,
            }));
          });
          if (!rec) return;
          try {
            await this.host.nft(addSlot(this.names, rec) + setPolicy(this.names, rec.slot, undefined, []));
          } catch {
            await this.release(rec);
            return;
          }
          if (this.closed) await this.release(rec);
          else this.mySpares.push(rec);
        }
      } finally {
        this.refilling = false;
      }
    })();
  }

  /** Lets go of this process's spares (a daemon closing); the network goes down with them if nothing else is on it. */
  async releaseSpares(): Promise<void> {
    this.closed = true;
    while (this.refilling) await new Promise((r) => setTimeout(r, 5));
    for (const rec of this.mySpares.splice(0)) await this.release(rec);
  }

  /** A new name, tenant or policy for a sandbox already on the network (a claim, `net set`), in force at once. */
  async update(id: string, change: { tenant: string; name: string; network: ResolvedNetworkField }): Promise<void> {
    const rec = await this.find(id);
    if (!rec) return;
    const policy = networkPolicy(change.network);
    const next: SlotRecord = { ...rec, tenant: change.tenant, name: change.name, policy: { allow: policy.allow, deny: policy.deny, networks: policy.networks } };
    // A pool claim with the default policy changes only the record: no nft process (~15 ms here) on a claim's path.
    const same = (a: readonly string[] | undefined, b: readonly string[] | undefined) => JSON.stringify(a) === JSON.stringify(b);
    if (!same(rec.policy.allow, policy.allow) || !same(rec.policy.deny, policy.deny)) await this.host.nft(this.policyScript(rec.slot, policy));
    if (!rec.policy.networks.length && !policy.networks.length) return this.slots.write(next);
    await this.slots.locked(async () => {
      await this.leavePeers(rec);
      await this.slots.write(next);
      await this.joinPeers(next);
    });
  }

  /** Takes a sandbox off the network; nothing of it is left. Idempotent. */
  async detach(id: string): Promise<void> {
    const rec = await this.find(id);
    if (rec) await this.release(rec);
  }

  async attachment(id: string): Promise<NetAttachment | undefined> {
    const rec = await this.find(id);
    return rec && this.attachmentOf(rec);
  }

  /** Every slot's record (the resolver's view). */
  records(): Promise<SlotRecord[]> {
    return this.slots.all();
  }

  /**
   * Removes slots whose sandbox is not `live` (a create that died, a
   * destroy that died half way), links and namespaces of this state dir no
   * slot names, and the network itself when no slot is left.
   */
  async reconcile(live: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const rec of await this.slots.all()) {
      if (live.has(rec.id)) continue;
      // A live process's spare is its own; a dead one's is nobody's.
      if (rec.spare && (rec.spare.pid === process.pid || procStat(rec.spare.pid)?.startTime === rec.spare.startTime)) continue;
      await this.release(rec);
      removed.push(rec.id);
    }
    const taken = await this.slots.taken();
    const names = this.names;
    for (const ns of await this.host.namespaces()) {
      const slot = names.slotOf(ns);
      if (slot !== undefined && !taken.has(slot)) await this.host.ip([`netns delete ${ns}`]).catch(() => {});
    }
    for (const link of await this.host.links()) {
      const slot = names.slotOf(link);
      if (slot !== undefined && !taken.has(slot)) await this.host.ip([`link delete ${link}`]).catch(() => {});
    }
    await this.slots.locked(() => this.downIfUnused());
    return removed;
  }

  private attachmentOf(rec: SlotRecord): NetAttachment {
    const range = this.range;
    return {
      slot: rec.slot,
      address: rec.address,
      prefix: range.prefix,
      gateway: range.gateway,
      dns: range.gateway,
      mac: rec.mac,
      ...(rec.kind === "container" ? { container: { port: rec.port, bridge: this.names.bridge } } : {}),
      ...(rec.kind === "vm" ? { tap: rec.port } : {}),
    };
  }

  private async find(id: string): Promise<SlotRecord | undefined> {
    return (await this.slots.all()).find((r) => r.id === id);
  }

  private policyScript(slot: number, p: NetworkPolicy): string {
    const cidrs = (rules: readonly string[]) => rules.map(parseEgressRule).flatMap((r) => (r.kind === "cidr" ? [r.cidr] : []));
    return setPolicy(this.names, slot, p.allow === undefined ? undefined : cidrs(p.allow), cidrs(p.deny));
  }

  /**
   * A VM's tap on the bridge. A container's veth pair is made once the
   * container runs, its peer right inside the container's namespace
   * (container-link.ts): moving a link made beforehand into a namespace
   * waits for RCU grace periods (16-17 ms a move here).
   */
  private async makeLink(r: SlotRecord): Promise<void> {
    if (r.kind !== "vm") return;
    await this.host.ip([`tuntap add dev ${r.port} mode tap`, `link set ${r.port} master ${this.names.bridge} up`]);
  }

  /** Everything of a slot, whatever part of it exists, then its file; the network goes down with the last slot. */
  private async release(r: SlotRecord): Promise<void> {
    if (r.policy.networks.length) await this.slots.locked(() => this.leavePeers(r)).catch(() => {});
    const script = deleteSlot(this.names, r);
    await this.host.nft(script).catch(async () => {
      for (const line of script.split("\n")) await this.host.nft(line).catch(() => {});
    });
    // The link first: deleting it is synchronous, while a namespace's
    // devices go in a kernel work queue after its last reference, and the
    // next sandbox may want the name at once.
    await this.host.ipEach([`link delete ${r.port}`, ...(r.netns ? [`netns delete ${r.netns}`] : [])]);
    await this.slots.locked(async () => {
      await this.slots.remove(r.slot);
      await this.downIfUnused();
    });
  }

  /** Port pairs of `r` and the slots of its tenant that share a named network with it. */
  private async peerPairs(r: SlotRecord): Promise<[string, string][]> {
    if (!r.policy.networks.length) return [];
    const mine = new Set(r.policy.networks);
    return (await this.slots.all())
      .filter((o) => o.id !== r.id && o.tenant === r.tenant && o.policy.networks.some((n) => mine.has(n)))
      .map((o) => [r.port, o.port]);
  }

  private async joinPeers(r: SlotRecord): Promise<void> {
    await this.host.nft(peerElements(this.names, "add", await this.peerPairs(r)));
  }

  /** Removes every pair naming r's port (listed from the set itself: exact whatever was added). */
  private async leavePeers(r: SlotRecord): Promise<void> {
    const out = await this.host.nftList(["-j", "list", "set", "bridge", this.names.table, "peers"]).catch(() => "");
    if (!out) return;
    const set = (JSON.parse(out) as { nftables: { set?: { elem?: { concat: string[] }[] } }[] }).nftables.find((x) => x.set)?.set;
    const pairs = (set?.elem ?? []).map((e) => e.concat).filter((c) => c[0] === r.port) as [string, string][];
    await this.host.nft(peerElements(this.names, "delete", pairs));
  }

  /** Under the lock: the bridge, tables and resolver, made if missing (a crash may have left part of them). */
  private async ensureUp(): Promise<void> {
    if (await isUp(this.setup)) return;
    this.rangeCache = undefined;
    this.rangeCache = await networkUp(this.setup);
  }

  private async downIfUnused(): Promise<void> {
    if ((await this.slots.taken()).size === 0) {
      await networkDown(this.setup);
      this.rangeCache = undefined;
    }
  }
}
