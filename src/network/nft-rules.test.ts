import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { runCommand } from "../host/command.js";
import { AddressRange } from "./ipv4.js";
import { netNames, slotMac } from "./names.js";
import { addResolved, addSlot, baseTables, deleteSlot, peerElements, setPolicy } from "./nft-rules.js";

describe("nftables rules", () => {
  const names = netNames("/nonexistent/state-for-a-test");
  const range = new AddressRange("198.19.200.0/24");
  const slot = { slot: 3, address: range.address(3), port: names.veth(3), mac: slotMac(names.tag, 3) };

  it("always drops link-local and multicast, refuses the host and other sandboxes", () => {
    const text = baseTables({ names, range, bridgeMac: slotMac(names.tag, -1) });
    assert.match(text, /ip daddr 169\.254\.0\.0\/16 counter drop/);
    assert.match(text, /ip daddr 224\.0\.0\.0\/4 counter drop/);
    assert.match(text, /iifname "crl[0-9a-f]{6}br" counter reject with icmpx admin-prohibited comment "the host's own addresses"/);
    assert.match(text, /ip daddr 198\.19\.200\.0\/24 counter reject/);
  });

  it("is what nft accepts (nft -c checks without changing anything)", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("nft -c needs root");
    const script = [
      baseTables({ names, range, bridgeMac: slotMac(names.tag, -1) }),
      addSlot(names, slot),
      setPolicy(names, 3, ["10.0.0.0/8", "10.1.0.0/16"], ["198.18.0.0/15"]),
      setPolicy(names, 3, undefined, []),
      addResolved(names, 3, ["198.18.1.2"], 30),
      peerElements(names, "add", [[names.veth(3), names.veth(4)]]),
    ].join("");
    const r = await runCommand("nft", ["-c", "-f", "-"], { input: script, allowFailure: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(deleteSlot(names, slot), /delete chain inet corral_[0-9a-f]{6} sb_3/);
    assert.equal(setPolicy(names, 3, undefined, []).includes("0.0.0.0/0"), true, "every destination is 0.0.0.0/0 in the allow set");
  });
});
