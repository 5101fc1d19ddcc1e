// Network "nat" for containers: outbound access to the test's own
// "upstream" namespace (standing for the internet: an HTTP server and a
// DNS zone in 198.18.0.0/15), the destinations always refused, egress
// policies (names through corral's resolver, CIDRs in nftables sets) and
// their change on a running sandbox, named networks. Traffic goes only to
// the upstream namespace, the host's own addresses and the test's
// sandboxes; 169.254.0.0/16 is checked by reading the ruleset.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { startUpstream, type Upstream } from "../helpers/upstream.js";
import { runCommand } from "../../src/host/command.js";
import { netNames } from "../../src/network/names.js";
import { POOL_TENANT } from "../../src/runtime/pools.js";

describe("network nat", () => {
  let up: Upstream;
  let t: TestState;
  const sh = async (id: string, cmd: string) => {
    const out: Buffer[] = [];
    const t0 = Date.now();
    const r = await t.s.exec(id, { cmd, timeoutMs: 20_000 }, { onStdout: (b) => out.push(b), onStderr: (b) => out.push(b) });
    return { code: r.exitCode, out: Buffer.concat(out).toString(), ms: Date.now() - t0 };
  };
  /** An HTTP GET with busybox nc (busybox-static's wget crashes resolving in a static binary). */
  const get = (host: string) => `printf 'GET / HTTP/1.0\\r\\nHost: ${host}\\r\\n\\r\\n' | nc -w 3 ${host} 80`;
  /**
   * Whether a TCP connect from the sandbox to host:port is refused, and how
   * long nc took inside the sandbox (busybox time: the exec's own overhead,
   * which a loaded host stretches, is not counted).
   */
  const refused = async (id: string, host: string, port: number) => {
    const r = await sh(id, `time nc -w 1 ${host} ${port} </dev/null; echo "exit $?"`);
    const m = /real\s+(\d+)m\s*([\d.]+)s/.exec(r.out);
    return { refused: !/^exit 0$/m.test(r.out), ms: m ? (Number(m[1]) * 60 + Number(m[2])) * 1000 : Infinity, out: r.out };
  };

  /** A sandbox's eth0 as it sees it: its address, MAC and default route (and what was printed). */
  const eth0 = async (id: string) => {
    const out = (await sh(id, "ip -4 -o addr show eth0; cat /sys/class/net/eth0/address; ip route show default")).out;
    return { addr: /inet ([\d.]+)\//.exec(out)?.[1], mac: /^([0-9a-f]{2}(:[0-9a-f]{2}){5})$/m.exec(out)?.[1], route: /default via ([\d.]+)/.exec(out)?.[1], out };
  };

  before(async () => {
    up = await startUpstream();
    t = await freshState("net", { network: { dnsUpstream: [up.dns] } });
  });
  after(async () => {
    await t?.close();
    await up?.close();
  });

  it("fetches from upstream by name and by address", async () => {
    const sb = await t.s.create({ template: "busybox", name: "fetcher", network: "nat" });
    const byName = await sh(sb.id, get("www.upstream.test"));
    assert.equal(byName.code, 0, byName.out);
    assert.match(byName.out, new RegExp(`hello from ${up.hosts["www.upstream.test"]!.replaceAll(".", "\\.")}`));
    const byAddress = await sh(sb.id, get(up.hosts["svc.upstream.test"]!));
    assert.match(byAddress.out, /200 OK/);
    // Its own name resolves to its own address, in /etc/hosts.
    const self = await sh(sb.id, "hostname -i; ip -4 -o addr show eth0");
    const [addr] = self.out.trim().split("\n");
    assert.match(self.out, new RegExp(`inet ${addr!.replaceAll(".", "\\.")}/`));
    // Its own sysfs: its links, not the host's.
    assert.deepEqual((await sh(sb.id, "ls /sys/class/net")).out.trim().split(/\s+/).sort(), ["eth0", "lo"]);
    await t.s.destroy(sb.id);
  });

  it("keeps a persistent sandbox's address across a stop and a start", async () => {
    const sb = await t.s.create({ template: "busybox", network: "nat", lifetime: { mode: "persistent" } });
    const before = (await sh(sb.id, "hostname -i")).out.trim();
    await t.s.stop(sb.id);
    await t.s.start(sb.id);
    assert.equal((await sh(sb.id, "hostname -i")).out.trim(), before);
    assert.match((await sh(sb.id, get("www.upstream.test"))).out, /200 OK/);
    await t.s.destroy(sb.id);
  });

  it("puts a microVM on the same network: a tap on the bridge, the guest set up by its init", async () => {
    const sb = await t.s.create({ template: "busybox", backend: "vm", name: "vmfetcher", network: { egress: { deny: [`${up.hosts["other.upstream.test"]}/32`] } } });
    const byName = await sh(sb.id, get("www.upstream.test"));
    assert.match(byName.out, /200 OK/, byName.out);
    assert.match((await sh(sb.id, get(up.hosts["svc.upstream.test"]!))).out, /200 OK/);
    assert.ok((await refused(sb.id, up.hosts["other.upstream.test"]!, 80)).refused, "deny holds for a VM too");
    assert.equal((await sh(sb.id, "cat /etc/hosts | grep -c vmfetcher")).out.trim(), "1");
    // A guest cannot take another address: the bridge drops what it sends from one not its own.
    const other = await t.s.create({ template: "busybox", network: "nat" });
    const otherAddr = (await sh(other.id, "hostname -i")).out.trim();
    const spoof = await sh(sb.id, `ip addr flush dev eth0 && ip addr add ${otherAddr}/24 dev eth0 && ip route add default via ${otherAddr.replace(/\.\d+$/, ".1")} ; ${get(up.hosts["www.upstream.test"]!)}`);
    assert.doesNotMatch(spoof.out, /200 OK/, "a spoofed source address got through");
    await t.s.destroy(sb.id);
    await t.s.destroy(other.id);
  });

  it("gives a microVM the MAC and CID its spec fixes, and refuses them to another", async () => {
    const mac = "52:54:00:c0:ff:ee";
    const sb = await t.s.create({ template: "busybox", backend: "vm", name: "vmfixed", identity: { mac, cid: 4242 }, network: "nat" });
    assert.equal((await sh(sb.id, "cat /sys/class/net/eth0/address")).out.trim(), mac);
    // The bridge's anti-spoofing rules know the fixed MAC: traffic flows.
    assert.match((await sh(sb.id, get("www.upstream.test"))).out, /200 OK/);
    const info = await t.s.get(sb.id);
    assert.equal(info.identity?.mac, mac);
    assert.equal(info.identity?.cid, 4242);
    const taken = (field: string) => (e: unknown) => (e as { code?: string }).code === "conflict" && new RegExp(`identity\\.${field}`).test((e as Error).message);
    await assert.rejects(t.s.create({ template: "busybox", backend: "vm", identity: { mac } }), taken("mac"));
    await assert.rejects(t.s.create({ template: "busybox", backend: "vm", identity: { cid: 4242 } }), taken("cid"));
    // A container cannot fix one: the field names its path.
    await assert.rejects(t.s.create({ template: "busybox", identity: { mac: "52:54:00:00:00:01" } }), (e: unknown) => /identity/.test(String((e as { issues?: { path: string }[] }).issues?.[0]?.path)));
    await t.s.destroy(sb.id);
  });

  it("cannot reach the host, the daemon's port or a sibling, and drops link-local", async () => {
    const a = await t.s.create({ template: "busybox", network: "nat" });
    const b = await t.s.create({ template: "busybox", network: "nat" });
    // A port listening on every host address, as the daemon's would.
    const server = net.createServer((c) => c.end("host\n"));
    await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const hostAddrs = Object.values(os.networkInterfaces())
        .flat()
        .filter((i) => i && i.family === "IPv4" && !i.internal)
        .map((i) => i!.address);
      assert.ok(hostAddrs.length > 0);
      for (const h of hostAddrs) {
        const r = await refused(a.id, h, port);
        assert.ok(r.refused, `reached the host at ${h}:${port}: ${r.out}`);
        assert.ok(r.ms < 1500, `took ${r.ms} ms`);
      }
      void (await sh(b.id, "nc -l -p 8080 -e echo sibling >/dev/null 2>&1 &"));
      const bAddr = (await sh(b.id, "hostname -i")).out.trim();
      const r = await refused(a.id, bAddr, 8080);
      assert.ok(r.refused && r.ms < 1500, `sibling: ${JSON.stringify(r)}`);
      // Nor from the sibling's side, to the first.
      assert.ok((await refused(b.id, (await sh(a.id, "hostname -i")).out.trim(), 22)).refused);
    } finally {
      server.close();
    }
    const table = (await runCommand("nft", ["list", "table", "inet", netNames(t.stateDir).table])).stdout;
    assert.match(table, /ip daddr 169\.254\.0\.0\/16 counter packets \d+ bytes \d+ drop/);
    assert.match(table, /ip daddr 224\.0\.0\.0\/4 counter packets \d+ bytes \d+ drop/);
    await t.s.destroy(a.id);
    await t.s.destroy(b.id);
  });

  it("allows only what its allow list names, drops what deny names, and changes while running", async () => {
    const svc = up.hosts["svc.upstream.test"]!;
    const other = up.hosts["other.upstream.test"]!;
    const www = up.hosts["www.upstream.test"]!;
    const sb = await t.s.create({ template: "busybox", network: { egress: { allow: ["svc.upstream.test"] } } });
    assert.match((await sh(sb.id, get("svc.upstream.test"))).out, /200 OK/);
    const otherName = await sh(sb.id, get("other.upstream.test"));
    assert.notEqual(otherName.code, 0, otherName.out);
    assert.ok((await refused(sb.id, www, 80)).refused, "a raw address never resolved through corral's resolver");

    const denied = await t.s.create({ template: "busybox", network: { egress: { deny: [`${other}/32`] } } });
    assert.ok((await refused(denied.id, other, 80)).refused);
    assert.match((await sh(denied.id, get(www))).out, /200 OK/);

    // The allow list changed while it runs: other now, svc no more.
    await t.s.setNetwork(sb.id, { egress: { allow: ["other.upstream.test", `${www}/32`] } });
    assert.match((await sh(sb.id, get("other.upstream.test"))).out, /200 OK/);
    assert.match((await sh(sb.id, get(www))).out, /200 OK/);
    assert.ok((await refused(sb.id, svc, 80)).refused, "svc was allowed by the old policy only");
    assert.equal(JSON.stringify(t.s.record(sb.id).spec.network.valueOf()).includes("other.upstream.test"), true);
    await t.s.destroy(sb.id);
    await t.s.destroy(denied.id);
  });

  it("claims from a warm pool of nat sandboxes with the claimant's name and policy", async () => {
    const key = t.s.pools.set("busybox", {}, 1, "container", "nat").key;
    await t.s.refillPools();
    const sb = await t.s.create({ template: "busybox", name: "pooled", network: { egress: { allow: ["svc.upstream.test"] } } });
    assert.equal(t.s.pools.list().find((p) => p.key === key)?.hits, 1, "claimed from the pool");
    t.s.pools.set("busybox", {}, 0, "container", "nat");
    assert.match((await sh(sb.id, get("svc.upstream.test"))).out, /200 OK/);
    assert.ok((await refused(sb.id, up.hosts["www.upstream.test"]!, 80)).refused, "the claimant's allow list holds");
    for (let i = 0; i < 500 && !(await sh(sb.id, "cat /etc/hosts")).out.includes("pooled"); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match((await sh(sb.id, "cat /etc/hosts; hostname")).out, /\tpooled\n[^]*^pooled$/m);
    await t.s.destroy(sb.id);
    await t.s.refillPools();
  });

  it("fills a nat pool of microVMs from one snapshot, each guest moved to its own address, and a claim applies its policy and name", async () => {
    const key = t.s.pools.set("busybox", { memory: "192M" }, 3, "vm", "nat").key;
    await t.s.refillPools();
    // One shape, whatever the addresses: the first VM is saved, the others are restored copies.
    const snaps = fs.readdirSync(path.join(t.stateDir, "vm", "snapshots")).filter((d) => !d.includes("."));
    assert.equal(snaps.length, 1, `snapshots: ${snaps.join(",")}`);
    const waiting = await t.s.list({ tenant: POOL_TENANT });
    assert.equal(waiting.length, 3);
    const links = await Promise.all(waiting.map((w) => eth0(w.id)));
    const ips = links.map((l) => l.addr);
    assert.ok(ips.every(Boolean) && new Set(ips).size === 3, `addresses: ${links.map((l) => l.out).join(" | ")}`);
    const sb = await t.s.create({ template: "busybox", backend: "vm", resources: { memory: "192M" }, name: "vmpooled", network: { egress: { allow: ["svc.upstream.test"] } } });
    assert.ok(waiting.some((w) => w.id === sb.id), "the create did not claim a pooled VM");
    t.s.pools.set("busybox", { memory: "192M" }, 0, "vm", "nat");
    assert.equal(t.s.pools.list().find((p) => p.key === key)?.hits, 1);
    assert.match((await sh(sb.id, get("svc.upstream.test"))).out, /200 OK/);
    assert.ok((await refused(sb.id, up.hosts["www.upstream.test"]!, 80)).refused, "the claimant's allow list holds");
    assert.equal((await sh(sb.id, "hostname")).out.trim(), "vmpooled");
    const ip = (await eth0(sb.id)).addr;
    assert.match((await sh(sb.id, "cat /etc/hosts")).out, new RegExp(`^${ip!.replaceAll(".", "\\.")}\tvmpooled$`, "m"));
    await t.s.destroy(sb.id);
    for (const w of await t.s.list({ tenant: POOL_TENANT })) await t.s.destroy(w.id);
  });

  it("snapshots a networked microVM: each copy has its own address, MAC and name, and keeps the saved policy", async () => {
    const other = up.hosts["other.upstream.test"]!;
    const orig = await t.s.create({ template: "busybox", backend: "vm", name: "vmsaved", resources: { memory: "192M" }, network: { egress: { deny: [`${other}/32`] } } });
    const saved = await eth0(orig.id);
    await t.s.snapshot(orig.id, "netsnap");
    const copies = [await t.s.restoreSnapshot("netsnap", { name: "vmcopy1" }), await t.s.restoreSnapshot("netsnap", { name: "vmcopy2" })];
    const seen = new Set([saved.addr]);
    for (const c of copies) {
      const e = await eth0(c.id);
      // Its slot, as the network keeps it (net/slots/N.json).
      const slots = path.join(t.stateDir, "net", "slots");
      const att = fs.readdirSync(slots).map((f) => JSON.parse(fs.readFileSync(path.join(slots, f), "utf8")) as { id: string; address: string; mac: string }).find((r) => r.id === c.id);
      assert.equal(e.addr, att?.address, e.out);
      assert.equal(e.mac, att?.mac, e.out);
      assert.notEqual(e.mac, saved.mac);
      assert.equal(e.route, saved.route, "its default route, through the same gateway");
      assert.ok(!seen.has(e.addr), `address ${e.addr} taken twice`);
      seen.add(e.addr);
      assert.match((await sh(c.id, "cat /etc/hosts; hostname")).out, new RegExp(`^${e.addr!.replaceAll(".", "\\.")}\t${c.name}$[^]*^${c.name}$`, "m"));
      assert.match((await sh(c.id, get("www.upstream.test"))).out, /200 OK/);
      assert.ok((await refused(c.id, other, 80)).refused, "the saved deny list holds in the copy");
    }
    // The saved VM goes on with its own.
    assert.deepEqual(await eth0(orig.id).then((e) => [e.addr, e.mac]), [saved.addr, saved.mac]);
    assert.match((await sh(orig.id, get("www.upstream.test"))).out, /200 OK/);
    for (const x of [orig, ...copies]) await t.s.destroy(x.id);
    await t.s.deleteSnapshot("netsnap");
  });

  it("joins sandboxes of one tenant on a named network, and no one else", async () => {
    const spec = (name: string) => ({ template: "busybox", name, network: { networks: ["job"] } });
    t.s.tenants.create("acme");
    t.s.tenants.create("other");
    const a = await t.s.create(spec("alpha"), { tenant: "acme" });
    const b = await t.s.create(spec("beta"), { tenant: "acme" });
    const stranger = await t.s.create(spec("gamma"), { tenant: "other" });
    void (await sh(b.id, "while true; do nc -l -p 9000 -e echo from-beta; done >/dev/null 2>&1 &"));
    let got = "";
    for (let i = 0; i < 50 && !got.includes("from-beta"); i++) got = (await sh(a.id, "nc -w 2 beta 9000 </dev/null")).out;
    assert.match(got, /from-beta/);
    const bAddr = (await sh(b.id, "hostname -i")).out.trim();
    assert.ok((await refused(stranger.id, bAddr, 9000)).refused, "another tenant's sandbox on a network of the same name");
    assert.notEqual((await sh(stranger.id, "nslookup beta")).out.includes(bAddr), true);
    for (const x of [a, b, stranger]) await t.s.destroy(x.id);
  });
});
