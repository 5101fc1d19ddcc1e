import { InvalidArgumentError } from "../core/errors.js";

/** IPv4 addresses as numbers, and the ranges sandboxes get theirs from. */

export function parseIpv4(s: string): number | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export interface Cidr {
  /** The network address (host bits zero). */
  readonly base: number;
  readonly prefix: number;
}

export function parseCidr(s: string): Cidr | undefined {
  const [a, p, more] = s.split("/");
  const addr = a === undefined ? undefined : parseIpv4(a);
  if (addr === undefined || more !== undefined) return undefined;
  const prefix = p === undefined ? 32 : /^\d{1,2}$/.test(p) ? Number(p) : NaN;
  if (!(prefix >= 0 && prefix <= 32)) return undefined;
  return { base: (addr & mask(prefix)) >>> 0, prefix };
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefix}`;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & mask(p)) >>> 0 === (b.base & mask(p)) >>> 0;
}

/**
 * A range for sandbox addresses: the gateway (the bridge's address, the
 * resolver) is its first host address, slot N gets the (N+2)th. At least a
 * /29; at most a /16 (65534 sandboxes of one state dir).
 */
export class AddressRange {
  readonly cidr: Cidr;
  constructor(text: string) {
    const c = parseCidr(text);
    if (!c || !text.includes("/")) throw new InvalidArgumentError(`the sandbox address range must be an IPv4 CIDR such as 10.213.0.0/16, got ${JSON.stringify(text)}`);
    if (c.prefix < 16 || c.prefix > 29) throw new InvalidArgumentError(`the sandbox address range must be a /16 to a /29, got /${c.prefix}`);
    this.cidr = c;
  }
  get text(): string {
    return formatCidr(this.cidr);
  }
  get prefix(): number {
    return this.cidr.prefix;
  }
  get gateway(): string {
    return formatIpv4(this.cidr.base + 1);
  }
  /** How many sandboxes it holds (network, gateway and broadcast addresses aside). */
  get slots(): number {
    return 2 ** (32 - this.cidr.prefix) - 3;
  }
  address(slot: number): string {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) throw new RangeError(`slot ${slot} is outside ${this.text}`);
    return formatIpv4(this.cidr.base + 2 + slot);
  }
  /** The slot of an address in the range, or undefined. */
  slotOf(address: string): number | undefined {
    const n = parseIpv4(address);
    if (n === undefined) return undefined;
    const slot = n - this.cidr.base - 2;
    return slot >= 0 && slot < this.slots ? slot : undefined;
  }
}
