import dgram from "node:dgram";
import fsp from "node:fs/promises";
import net from "node:net";
import dnsPacket from "dns-packet";
import { SlotFiles, type SlotRecord } from "../slot-files.js";
import { nameVerdict } from "./name-policy.js";

/** What the resolver of a state dir is told (`<state>/net/resolver-config.json`). */
export interface ResolverConfig {
  /** The gateway address it listens on (port 53, UDP and TCP). */
  readonly listen: string;
  /** Servers it forwards allowed names to, "ADDR" or "ADDR:PORT". */
  readonly upstream: readonly string[];
  /** The state dir's net directory (its slot files). */
  readonly netDir: string;
  /** Records addresses for a sandbox: resolved for an allowed name, for `seconds`. */
  readonly record?: (slot: number, addresses: string[], seconds: number) => Promise<void>;
}

/** A name resolved for an allow list stays allowed at least this long, so a TTL of 0 still lets the client connect. */
export const MIN_ALLOW_SECONDS = 60;
const UPSTREAM_TIMEOUT_MS = 2000;
/** Bounds: queries waiting for upstream at once; TCP clients at once and how long each may stay. */
const MAX_PENDING = 1024;
const MAX_TCP_CLIENTS = 64;
const TCP_IDLE_MS = 10_000;

/**
 * corral's resolver for the sandboxes of one state dir: it answers each
 * sandbox by its own policy (source address → slot file → policy; the
 * bridge rules make the source address unforgeable), forwards what the
 * policy allows, and for allow lists puts the addresses it answered with
 * into that sandbox's nftables set before the answer leaves, so the
 * connection that follows is let through. AAAA questions get no records
 * (sandboxes have no IPv6), PTR questions no answer (nothing about the
 * host's network leaks through reverse lookups).
 */
export class Resolver {
  private readonly slots: SlotFiles;
  private cache: { mtimeMs: number; slots: SlotRecord[] } | undefined;
  private pending = 0;
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private tcpClients = 0;

  constructor(private readonly c: ResolverConfig) {
    this.slots = new SlotFiles(c.netDir);
  }

  async listen(): Promise<void> {
    const udp = dgram.createSocket("udp4");
    this.udp = udp;
    udp.on("message", (msg, from) => {
      void this.answer(msg, from.address).then((reply) => reply && udp.send(reply, from.port, from.address));
    });
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(53, this.c.listen, () => resolve());
    });
    const tcp = net.createServer((sock) => this.serveTcp(sock));
    this.tcp = tcp;
    tcp.maxConnections = MAX_TCP_CLIENTS;
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(53, this.c.listen, () => resolve());
    });
  }

  close(): void {
    this.udp?.close();
    this.tcp?.close();
  }

  private async allSlots(): Promise<SlotRecord[]> {
    const st = await fsp.stat(this.slots.dir).catch(() => undefined);
    const mtimeMs = st?.mtimeMs ?? 0;
    if (!this.cache || this.cache.mtimeMs !== mtimeMs) this.cache = { mtimeMs, slots: await this.slots.all() };
    return this.cache.slots;
  }

  /** The answer to one query from `client`, or undefined to stay silent (not a sandbox, unparsable). */
  async answer(msg: Buffer, client: string): Promise<Buffer | undefined> {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (q.type !== "query" || !question || (q.questions?.length ?? 0) !== 1) return undefined;
    const slots = await this.allSlots();
    const me = slots.find((s) => s.address === client);
    if (!me) return undefined;
    const name = question.name.toLowerCase().replace(/\.$/, "");
    const reply = (rcode: string, answers: dnsPacket.Answer[] = []) =>
      dnsPacket.encode({ id: q.id ?? 0, type: "response", flags: dnsPacket.RECURSION_AVAILABLE | ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED), rcode, questions: [question], answers } as dnsPacket.Packet);
    if (question.type === "PTR") return reply("NXDOMAIN");
    const v = nameVerdict(name, me, slots);
    if (v.kind === "refuse") return reply("REFUSED");
    if (v.kind === "local") {
      return reply("NOERROR", question.type === "A" ? [{ type: "A", name: question.name, ttl: 5, data: v.address } as dnsPacket.Answer] : []);
    }
    if (question.type === "AAAA") return reply("NOERROR");
    if (this.pending >= MAX_PENDING) return reply("SERVFAIL");
    this.pending++;
    try {
      const raw = await this.forward(msg);
      if (!raw) return reply("SERVFAIL");
      if (v.record && this.c.record) {
        const r = dnsPacket.decode(raw);
        const a = (r.answers ?? []).filter((x): x is dnsPacket.StringAnswer => x.type === "A");
        if (a.length) await this.c.record(me.slot, a.map((x) => x.data), Math.max(MIN_ALLOW_SECONDS, ...a.map((x) => x.ttl ?? 0)));
      }
      return raw;
    } catch {
      return reply("SERVFAIL");
    } finally {
      this.pending--;
    }
  }

  /** Asks each upstream in turn (UDP), each for at most UPSTREAM_TIMEOUT_MS. */
  private async forward(msg: Buffer): Promise<Buffer | undefined> {
    for (const u of this.c.upstream) {
      const [host, port] = u.includes(":") ? [u.slice(0, u.lastIndexOf(":")), Number(u.slice(u.lastIndexOf(":") + 1))] : [u, 53];
      const got = await new Promise<Buffer | undefined>((resolve) => {
        const s = dgram.createSocket("udp4");
        const done = (b: Buffer | undefined) => {
          clearTimeout(timer);
          s.close();
          resolve(b);
        };
        const timer = setTimeout(() => done(undefined), UPSTREAM_TIMEOUT_MS);
        s.on("error", () => done(undefined));
        s.on("message", (b) => {
          if (b.length >= 2 && b.readUInt16BE(0) === msg.readUInt16BE(0)) done(b);
        });
        s.send(msg, port, host);
      });
      if (got) return got;
    }
    return undefined;
  }

  /** DNS over TCP: two-byte lengths; one query at a time per client, which may stay TCP_IDLE_MS idle. */
  private serveTcp(sock: net.Socket): void {
    this.tcpClients++;
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on("close", () => this.tcpClients--);
    sock.on("error", () => {});
    let buf = Buffer.alloc(0);
    let busy = false;
    const next = async () => {
      if (busy || buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) return;
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      busy = true;
      sock.pause();
      const reply = await this.answer(Buffer.from(msg), sock.remoteAddress?.replace(/^::ffff:/, "") ?? "");
      if (!reply) return void sock.destroy();
      const head = Buffer.alloc(2);
      head.writeUInt16BE(reply.length);
      sock.write(Buffer.concat([head, reply]));
      busy = false;
      sock.resume();
      void next();
    };
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > 2 + 65535) return void sock.destroy();
      void next();
    });
  }
}
