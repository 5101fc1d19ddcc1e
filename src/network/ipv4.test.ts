import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AddressRange, formatIpv4, overlaps, parseCidr, parseIpv4 } from "./ipv4.js";

describe("ipv4", () => {
  it("parses and formats", () => {
    assert.equal(formatIpv4(parseIpv4("198.19.3.250")!), "198.19.3.250");
    assert.equal(parseIpv4("1.2.3"), undefined);
    assert.equal(parseIpv4("1.2.3.256"), undefined);
    assert.deepEqual(parseCidr("10.1.2.3/8"), { base: parseIpv4("10.0.0.0"), prefix: 8 });
    assert.equal(parseCidr("10.0.0.0/33"), undefined);
  });

  it("tells overlapping ranges", () => {
    assert.ok(overlaps(parseCidr("10.0.0.0/8")!, parseCidr("10.213.0.0/16")!));
    assert.ok(!overlaps(parseCidr("198.19.1.0/24")!, parseCidr("198.19.2.0/24")!));
  });

  it("hands out the gateway and one address per slot", () => {
    const r = new AddressRange("198.19.7.0/24");
    assert.equal(r.gateway, "198.19.7.1");
    assert.equal(r.address(0), "198.19.7.2");
    assert.equal(r.slots, 253);
    assert.equal(r.address(252), "198.19.7.254");
    assert.throws(() => r.address(253));
    assert.equal(r.slotOf("198.19.7.9"), 7);
    assert.equal(r.slotOf("198.19.8.9"), undefined);
    assert.throws(() => new AddressRange("198.19.7.0/30"), /\/16 to a \/29/);
    assert.throws(() => new AddressRange("nonsense"), /IPv4 CIDR/);
  });
});
