// Named snapshots of microVMs: a running VM is saved (memory, devices and,
// for a persistent one, its disk, of one instant) and goes on; restores are
// new sandboxes that start where it was, each with its own identity, and
// independent of it and of each other. Through the library and the API.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { shOk } from "../helpers/exec.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { vmIdentity } from "../../src/backends/vm/identity.js";
import { corralCli, corralRemote } from "../helpers/cli.js";
import { Sandbox } from "../../sdk/src/index.js";

describe("VM snapshots", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("vm-snap");
  });
  after(async () => t.close());

  const sh = (id: string, cmd: string) => shOk(t.s, id, cmd);

  it("restores a persistent VM's memory and disk into independent new sandboxes", async () => {
    const src = await t.s.create({ template: "busybox", backend: "vm", name: "snap-src", lifetime: { mode: "persistent" }, resources: { disk: "64M", memory: "192M" } });
    // State in all three places: the disk, tmpfs (/tmp is on the overlay; /dev/shm is RAM), a running process.
    await sh(src.id, "echo on-disk > /data.txt && echo in-ram > /dev/shm/ram.txt && sync");
    await t.s.exec(src.id, { cmd: "sleep 1000 >/dev/null 2>&1 &", keepAlive: true });
    // An OOM kill before the snapshot stays in the copies' guest counts.
    assert.equal((await t.s.exec(src.id, { argv: ["sh", "-c", 'a=x; while :; do a="$a$a"; done'] })).oomKilled, true);
    const snap = await t.s.snapshot(src.id, "base");
    assert.equal(snap.source, "snap-src");
    assert.ok(snap.bytes > 0);
    await assert.rejects(t.s.snapshot(src.id, "base"), /already exists/);
    assert.deepEqual(t.s.listSnapshots().map((x) => x.name), ["base"]);

    // The source runs on, and what it does next is not in the snapshot.
    assert.equal(await sh(src.id, "echo later > /data.txt; cat /data.txt"), "later\n");

    const a = await t.s.restoreSnapshot("base", { name: "copy-a" });
    const b = await t.s.restoreSnapshot("base");
    assert.equal(a.spec.lifetime.mode, "persistent");
    for (const [sb, host] of [[a, "copy-a"], [b, b.name]] as const) {
      assert.equal(await sh(sb.id, "cat /data.txt /dev/shm/ram.txt; hostname"), `on-disk\nin-ram\n${host}\n`);
      assert.match(await sh(sb.id, "ps"), /sleep 1000/, "the process running at the snapshot runs on in the copy");
    }
    // ...so a plain SIGKILL in a copy is not taken for one.
    const killed = await t.s.exec(a.id, { cmd: "kill -9 $$" });
    assert.deepEqual([killed.signal, killed.oomKilled], [9, false]);
    await sh(a.id, "echo only-a > /data.txt; sync");
    assert.equal(await sh(b.id, "cat /data.txt"), "on-disk\n");
    assert.equal(await sh(src.id, "cat /data.txt"), "later\n");
    // A restored persistent VM is a pet like any other: stop and start keep its disk.
    await t.s.stop(a.id);
    await t.s.start(a.id);
    assert.equal(await sh(a.id, "cat /data.txt"), "only-a\n");
  });

  it("refuses containers, unknown names and bad names; deleting a snapshot removes its files", async () => {
    const c = await t.s.create({ template: "busybox" });
    await assert.rejects(t.s.snapshot(c.id, "nope"), /only microVM sandboxes/);
    await assert.rejects(t.s.restoreSnapshot("missing"), /no snapshot named "missing"/);
    const vm = (await t.s.list()).find((x) => x.name === "snap-src")!;
    await assert.rejects(t.s.snapshot(vm.id, "Bad Name"), /snapshot name/);
    const saved = path.join(t.stateDir, "vm", "saved");
    assert.equal(fs.readdirSync(saved).length, 1);
    await t.s.deleteSnapshot("base");
    assert.deepEqual([t.s.listSnapshots(), fs.readdirSync(saved)], [[], []]);
  });

  it("snapshots and restores through the API, per tenant", async () => {
    const d = await testDaemon(t);
    try {
      const key = t.s.tenants.createKey("snap-api").key;
      const other = t.s.tenants.createKey("snap-other").key;
      const created = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", backend: "vm", name: "api-src" } });
      assert.equal(created.status, 201, created.text);
      const saved = await request(d.url, "POST", "/v1/sandboxes/api-src/snapshot", { key, json: { name: "api-snap" } });
      assert.equal(saved.status, 201, saved.text);
      assert.equal(saved.json<{ name: string }>().name, "api-snap");
      assert.equal((await request(d.url, "GET", "/v1/snapshots", { key: other })).json<{ snapshots: unknown[] }>().snapshots.length, 0);
      assert.equal((await request(d.url, "POST", "/v1/snapshots/api-snap/restore", { key: other, json: {} })).status, 404);
      const restored = await request(d.url, "POST", "/v1/snapshots/api-snap/restore", { key, json: { name: "api-copy" } });
      assert.equal(restored.status, 201, restored.text);
      assert.equal(restored.json<{ name: string; status: string }>().status, "running");
      // Each VM's identity comes from its own name, a restored copy's too.
      type WithIdentity = { identity?: { mac: string; cid: number; tap: string } };
      assert.deepEqual(created.json<WithIdentity>().identity, vmIdentity("api-src"));
      assert.deepEqual(restored.json<WithIdentity>().identity, vmIdentity("api-copy"));
      assert.deepEqual((await request(d.url, "GET", "/v1/sandboxes/api-copy", { key })).json<WithIdentity>().identity, vmIdentity("api-copy"));
      assert.equal((await request(d.url, "DELETE", "/v1/snapshots/api-snap", { key })).status, 204);
      assert.equal((await request(d.url, "DELETE", "/v1/snapshots/api-snap", { key })).status, 404);

      // The same through the SDK.
      const conn = { apiUrl: d.url, apiKey: key };
      const src = await Sandbox.connect("api-copy", conn);
      const info = await src.createSnapshot("sdk-snap");
      assert.deepEqual([info.name, info.source, info.backend], ["sdk-snap", "api-copy", "vm"]);
      assert.deepEqual((await Sandbox.listSnapshots(conn)).map((x) => x.name), ["sdk-snap"]);
      const copy = await Sandbox.restore("sdk-snap", { ...conn, name: "sdk-copy" });
      assert.equal((await copy.commands.run("hostname")).stdout, "sdk-copy\n");
      // The serial console of a booted VM, through the SDK and the CLI.
      assert.match(await (await Sandbox.connect("api-src", conn)).logs(), /corral-init: agent on \/dev\/vport/);
      const cli = await corralRemote(d.url, key, "logs", "api-src");
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(cli.stdout, /corral-init: agent on/);
      await Sandbox.deleteSnapshot("sdk-snap", conn);
      assert.deepEqual(await Sandbox.listSnapshots(conn), []);
    } finally {
      await d.close();
    }
  });

  it("snapshots and restores from the CLI", async () => {
    const made = await corralCli(t, "snapshot", "create", "snap-src", "cli-snap");
    assert.equal(made.code, 0, made.stderr);
    assert.match((await corralCli(t, "snapshot", "ls")).stdout, /cli-snap\s+snap-src\s+busybox/);
    const restored = await corralCli(t, "snapshot", "restore", "cli-snap", "--name", "cli-copy");
    assert.deepEqual([restored.code, restored.stdout], [0, "cli-copy\n"]);
    assert.equal(await sh("cli-copy", "cat /data.txt"), "later\n");
    assert.equal((await corralCli(t, "snapshot", "rm", "cli-snap")).code, 0);
    const gone = await corralCli(t, "snapshot", "restore", "cli-snap");
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /no snapshot named "cli-snap"/);
  });
});
