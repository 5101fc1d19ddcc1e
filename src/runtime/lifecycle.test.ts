// The runtime's lifecycle over a fake backend (no root): what it records,
// what it asks the backend, and what it undoes when the backend fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { BackendError } from "../core/errors.js";
import { fakeRuntime } from "../../test/helpers/fake-runtime.js";

const rowCount = (s: { db: { prepare(sql: string): { get(): unknown } } }) => (s.db.prepare("SELECT count(*) AS n FROM sandboxes").get() as { n: number }).n;

test("creates, finds, lists, stops, starts and destroys a sandbox through its backend", async () => {
  const f = await fakeRuntime();
  try {
    const sb = await f.s.create({ template: "tpl", name: "pet", lifetime: { mode: "persistent" }, labels: { team: "a" } });
    assert.deepEqual([sb.name, sb.state, sb.status, sb.tenant, sb.expiresAt], ["pet", "running", "running", "local", null]);
    assert.equal(f.container.sandboxes.get(sb.id)?.hostname, "pet");
    assert.deepEqual(f.container.sandboxes.get(sb.id)?.layers, [f.s.store.layerDir(f.layer)]);
    assert.ok(fs.existsSync(path.join(f.stateDir, "sandboxes", sb.id)));
    assert.equal((await f.s.get("pet")).id, sb.id);
    assert.deepEqual((await f.s.list({ labels: { team: "a" } })).map((x) => x.id), [sb.id]);
    assert.deepEqual(await f.s.list({ labels: { team: "b" } }), []);

    assert.equal((await f.s.stop("pet")).status, "stopped");
    assert.equal((await f.s.get("pet")).status, "stopped");
    await assert.rejects(f.s.agent("pet"), { code: "sandbox_not_running" }); // stopped: start it first
    assert.equal((await f.s.start("pet")).status, "running");
    await f.s.destroy("pet");
    await assert.rejects(f.s.get("pet"), { code: "sandbox_not_found" });
    assert.deepEqual(f.container.calls.filter((c) => c.endsWith(sb.id)), [`create ${sb.id}`, `stop ${sb.id}`, `start ${sb.id}`, `destroy ${sb.id}`]);
    assert.equal(rowCount(f.s), 0);
  } finally {
    await f.close();
  }
});

test("a failed start removes what was made and the row; the name is free again", async () => {
  const f = await fakeRuntime();
  try {
    f.container.failNext = new BackendError("no luck");
    await assert.rejects(f.s.create({ template: "tpl", name: "x" }), /no luck/);
    assert.equal(rowCount(f.s), 0);
    assert.equal(f.container.sandboxes.size, 0);
    assert.deepEqual(fs.readdirSync(path.join(f.stateDir, "sandboxes")), []);
    assert.equal((await f.s.create({ template: "tpl", name: "x" })).name, "x");
  } finally {
    await f.close();
  }
});

test("a name is unique within its tenant only, and a taken one is a conflict", async () => {
  const f = await fakeRuntime();
  try {
    f.s.tenants.create("other");
    await f.s.create({ template: "tpl", name: "same" });
    await assert.rejects(f.s.create({ template: "tpl", name: "same" }), { code: "conflict", message: 'a sandbox named "same" already exists' });
    await f.s.create({ template: "tpl", name: "same" }, { tenant: "other" });
    // By name across tenants it is ambiguous; by id or within a tenant it is not.
    await assert.rejects(f.s.get("same"), { code: "conflict" });
    assert.equal((await f.s.get("same", { tenant: "other" })).tenant, "other");
    await assert.rejects(f.s.get("same", { tenant: "nobody" }), { code: "sandbox_not_found" });
    assert.equal(f.container.sandboxes.size, 2, "the refused create made nothing");
  } finally {
    await f.close();
  }
});

test("quotas on count and memory are checked with the insert", async () => {
  const f = await fakeRuntime();
  try {
    f.s.tenants.create("small", { maxSandboxes: 2, maxMemory: 300 * 1024 ** 2 });
    const a = await f.s.create({ template: "tpl", resources: { memory: "128M" } }, { tenant: "small" });
    await assert.rejects(f.s.create({ template: "tpl", resources: { memory: "256M" } }, { tenant: "small" }), { code: "quota_exceeded" });
    await f.s.create({ template: "tpl", resources: { memory: "128M" } }, { tenant: "small" });
    await assert.rejects(f.s.create({ template: "tpl", resources: { memory: "16M" } }, { tenant: "small" }), (e: Error & { over?: { quota: string } }) => e.over?.quota === "sandboxes");
    await f.s.destroy(a.id);
    await f.s.create({ template: "tpl", resources: { memory: "16M" } }, { tenant: "small" });
    assert.equal(f.container.sandboxes.size, 2);
  } finally {
    await f.close();
  }
});

test("expiry: the spec's timeout from creation, set again, cleared by promote, reaped when due", async () => {
  const f = await fakeRuntime();
  try {
    const t0 = Date.now();
    const sb = await f.s.create({ template: "tpl", lifetime: { timeoutSeconds: 60 } });
    const due = Date.parse(sb.expiresAt ?? "");
    assert.ok(due >= t0 + 60_000 && due <= Date.now() + 60_000, sb.expiresAt ?? "none");
    const later = f.s.setTimeout(sb.id, 3600);
    assert.ok(Date.parse(later.expiresAt ?? "") >= t0 + 3600_000);
    await assert.rejects(async () => f.s.setTimeout(sb.id, 0), { code: "invalid_argument" });
    assert.deepEqual(await f.s.reapExpired(Date.now() + 3599_000), []);
    assert.deepEqual(await f.s.reapExpired(Date.now() + 3601_000), [sb.id]);
    assert.equal(f.container.sandboxes.size, 0);

    const cattle = await f.s.create({ template: "tpl" });
    const pet = f.s.promote(cattle.id);
    assert.deepEqual([pet.expiresAt, pet.spec.lifetime.mode], [null, "persistent"]);
    assert.deepEqual(await f.s.reapExpired(Date.now() + 365 * 86400_000), []);
    // Promoted, its files are still in memory: it cannot be stopped.
    await assert.rejects(f.s.stop(cattle.id), { code: "conflict" });
  } finally {
    await f.close();
  }
});

test("get and list carry the identity a backend gives (VMs), and none otherwise", async () => {
  const f = await fakeRuntime();
  try {
    const vm = await f.s.create({ template: "tpl", backend: "vm", name: "guest" });
    const ct = await f.s.create({ template: "tpl", name: "box" });
    assert.deepEqual(vm.identity, f.vm.identity("guest"));
    assert.deepEqual((await f.s.get("guest")).identity, f.vm.identity("guest"));
    assert.equal("identity" in (await f.s.get(ct.id)), false);
    assert.deepEqual((await f.s.list()).map((x) => x.identity?.tap), [f.vm.identity("guest").tap, undefined]);
    await assert.rejects(f.s.create({ template: "tpl", backend: "gvisor" }), { code: "host_unsupported" }); // no gvisor backend here
  } finally {
    await f.close();
  }
});
