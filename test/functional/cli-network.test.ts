// The corral command's network flags and commands on a state dir: --network,
// --allow, --deny, --join, `net set`, and `port` (a daemon's: one line,
// exit 1, without one). The sandboxes' network is the test's own range
// with DNS to nobody (freshState); nothing is sent off the host.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { corralCli } from "../helpers/cli.js";
import { freshState, type TestState } from "../helpers/state.js";
import { networkPolicy } from "../../src/core/network-spec.js";

describe("corral CLI, networks", () => {
  let t: TestState;
  let corral: (...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;
  before(async () => {
    t = await freshState("clinet");
    corral = (...args) => corralCli(t, ...args);
  });
  after(async () => t.close());

  it("run --network nat: an address and corral's resolver", async () => {
    const r = await corral("run", "--template", "busybox", "--network", "nat", "--", "sh", "-c", "cat /etc/resolv.conf; ls /sys/class/net");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^nameserver ${t.network.range.replace(/\.0\/24$/, ".1").replaceAll(".", "\\.")}$`, "m"));
    assert.match(r.stdout, /^eth0$/m);
  });

  it("refuses a bad rule in one line naming the field", async () => {
    const r = await corral("run", "--template", "busybox", "--allow", "not a rule", "--", "true");
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /network\.egress\.allow\.0/);
  });

  it("create --deny --join, then net set replaces the policy", async () => {
    const c = await corral("create", "--template", "busybox", "--name", "netbox", "--deny", "198.18.0.0/15", "--join", "job");
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(networkPolicy(t.s.record("netbox").spec.network), { mode: "nat", allow: undefined, deny: ["198.18.0.0/15"], networks: ["job"], ports: [] });
    const set = await corral("net", "set", "netbox", "--allow", "*.example.com");
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(networkPolicy(t.s.record("netbox").spec.network).allow, ["*.example.com"]);
    const port = await corral("port", "netbox", "8080");
    assert.equal(port.code, 1);
    assert.match(port.stderr, /served by a daemon/);
    assert.equal((await corral("rm", "netbox")).code, 0);
  });
});
