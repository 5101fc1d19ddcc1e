// Applying the declared state (declared.ts) over the fake backends (no
// root): what it creates, changes, leaves alone and removes.
import { test } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { fakeRuntime } from "../../test/helpers/fake-runtime.js";
import { parseDeclared } from "./declared-state.js";

const state = (sandboxes: Record<string, unknown>, extra: Record<string, unknown> = {}) => parseDeclared(JSON.stringify({ version: 1, sandboxes, ...extra }));
const pet = (memory: string, extra: Record<string, unknown> = {}) => ({ spec: { template: "tpl", resources: { memory }, lifetime: { mode: "persistent" } }, ...extra });

test("creates what is missing, keeps what is unchanged, removes only what it made", async () => {
  const f = await fakeRuntime();
  try {
    const api = await f.s.create({ template: "tpl", name: "api" });
    let r = await f.s.applyDeclared(state({ a: pet("64M"), b: { spec: { template: "tpl" } } }));
    assert.deepEqual([r.created.sort(), r.errors], [["a", "b"], []]);
    const a = await f.s.get("a");
    assert.equal(a.declared, true);
    assert.equal((await f.s.get("b")).expiresAt, null, "an ephemeral declared sandbox does not expire");
    assert.equal((await f.s.get("api")).declared, undefined);

    r = await f.s.applyDeclared(state({ a: pet("64M") }));
    assert.deepEqual([r.unchanged, r.removed], [["a"], ["b"]]);
    await assert.rejects(f.s.get("b"), { code: "sandbox_not_found" });
    assert.equal((await f.s.get("a")).id, a.id);
    assert.equal((await f.s.get("api")).id, api.id);

    // A declared name an API sandbox holds: an error for it alone.
    r = await f.s.applyDeclared(state({ a: pet("64M"), api: { spec: { template: "tpl" } } }));
    assert.deepEqual(r.errors.map((e) => e.name), ["api"]);
    assert.match(r.errors[0]!.message, /was not made by the declaration/);
    assert.equal((await f.s.get("api")).id, api.id);
  } finally {
    await f.close();
  }
});

test("a change: persistent on its disk (same id), otherwise made anew; restartIfChanged false waits for a stop", async () => {
  const f = await fakeRuntime();
  try {
    await f.s.applyDeclared(state({ a: pet("64M"), e: { spec: { template: "tpl", resources: { memory: "64M" } } }, lazy: pet("64M", { restartIfChanged: false }) }));
    const [a, e, lazy] = await Promise.all(["a", "e", "lazy"].map((n) => f.s.get(n)));
    const r = await f.s.applyDeclared(state({ a: pet("96M"), e: { spec: { template: "tpl", resources: { memory: "96M" } } }, lazy: pet("96M", { restartIfChanged: false }) }));
    assert.deepEqual([r.recreated.sort(), r.pending], [["a", "e"], ["lazy"]]);
    const a2 = await f.s.get("a");
    assert.deepEqual([a2.id, a2.spec.resources.memory, a2.status], [a!.id, 96 * 1024 ** 2, "running"]);
    assert.ok(f.container.calls.includes(`stop ${a!.id}`) && f.container.calls.includes(`start ${a!.id}`));
    assert.notEqual((await f.s.get("e")).id, e!.id);
    assert.equal((await f.s.get("lazy")).spec.resources.memory, 64 * 1024 ** 2);
    await f.s.stop("lazy");
    const again = await f.s.applyDeclared(state({ a: pet("96M"), e: { spec: { template: "tpl", resources: { memory: "96M" } } }, lazy: pet("96M", { restartIfChanged: false }) }));
    assert.deepEqual(again.recreated, ["lazy"]);
    const l2 = await f.s.get("lazy");
    assert.deepEqual([l2.id, l2.spec.resources.memory, l2.status], [lazy!.id, 96 * 1024 ** 2, "running"]);
  } finally {
    await f.close();
  }
});

test("autoStart: false leaves a persistent one stopped; true starts one found stopped", async () => {
  const f = await fakeRuntime();
  try {
    await f.s.applyDeclared(state({ cold: pet("64M", { autoStart: false }), warm: pet("64M") }));
    assert.equal((await f.s.get("cold")).status, "stopped");
    await f.s.stop("warm");
    const r = await f.s.applyDeclared(state({ cold: pet("64M", { autoStart: false }), warm: pet("64M") }));
    assert.deepEqual([r.started, r.unchanged], [["warm"], ["cold"]]);
    assert.equal((await f.s.get("warm")).status, "running");
    assert.throws(() => state({ x: { spec: { template: "tpl" }, autoStart: false } }), /sandboxes\.x\.autoStart: false needs a persistent sandbox/);
  } finally {
    await f.close();
  }
});

test("keys from files are registered and revoked once undeclared; pools sized and emptied", async () => {
  const f = await fakeRuntime();
  try {
    const key = `crl_${randomBytes(6).toString("hex")}_${randomBytes(32).toString("base64url")}`;
    const file = path.join(f.stateDir, "..", "k");
    await fsp.writeFile(file, `${key}\n`);
    await f.s.applyDeclared(state({}, { apiKeys: [{ tenant: "alice", file }], pools: [{ template: "tpl", size: 2, resources: { memory: "64M" } }] }));
    assert.equal(f.s.tenants.authenticate(key), "alice");
    assert.deepEqual(f.s.pools.configs().map((p) => [p.template, p.target]), [["tpl", 2]]);
    await f.s.applyDeclared(state({}));
    assert.throws(() => f.s.tenants.authenticate(key), { code: "unauthorized" });
    assert.deepEqual(f.s.pools.configs().map((p) => p.target), [0]);
    // A key id registered for another tenant is refused, not moved.
    await f.s.applyDeclared(state({}, { apiKeys: [{ tenant: "alice", file }] }));
    await assert.rejects(f.s.applyDeclared(state({}, { apiKeys: [{ tenant: "bob", file }] })), { code: "conflict" });
  } finally {
    await f.close();
  }
});

test("the file's errors name where they are", () => {
  assert.throws(() => parseDeclared("{"), /not JSON/);
  assert.throws(() => parseDeclared(JSON.stringify({ version: 2 })), /version: must be 1/);
  assert.throws(() => parseDeclared(JSON.stringify({ version: 1, sandboxes: { dev: { spec: { template: "tpl", resources: { memory: "lots" } } } } })), /sandboxes\.dev\.spec\.resources\.memory: memory must be bytes/);
  assert.throws(() => parseDeclared(JSON.stringify({ version: 1, sandboxes: { Dev: { spec: { template: "tpl" } } } })), /sandboxes\.Dev: sandbox names/);
  assert.throws(() => parseDeclared(JSON.stringify({ version: 1, surprise: true })), /unrecognized|surprise/i);
});
