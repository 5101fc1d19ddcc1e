import { test } from "node:test";
import assert from "node:assert/strict";
import { openDatabase } from "./db.js";
import { Tenants } from "./tenants.js";
import { AuthError } from "../spec/errors.js";

test("keys authenticate their tenant, are stored hashed, and can be revoked", () => {
  const db = openDatabase(":memory:");
  const t = new Tenants(db);
  const { id, key } = t.createKey("acme");
  assert.match(key, /^crl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal(t.authenticate(key), "acme");
  const stored = db.prepare("SELECT hash FROM api_keys WHERE id = ?").get(id) as { hash: string };
  assert.ok(!key.includes(stored.hash) && stored.hash.length === 64);
  assert.throws(() => t.authenticate(undefined), AuthError);
  assert.throws(() => t.authenticate("nonsense"), AuthError);
  assert.throws(() => t.authenticate(key.slice(0, -1) + (key.endsWith("A") ? "B" : "A")), AuthError);
  t.revokeKey(id);
  assert.throws(() => t.authenticate(key), AuthError);
  assert.equal(t.keys("acme")[0]?.revokedAt !== null, true);
});

test("tenants have quotas and unique names", () => {
  const t = new Tenants(openDatabase(":memory:"));
  t.create("team-a", { maxSandboxes: 2, maxMemory: 1024 });
  assert.deepEqual({ ...t.get("team-a"), createdAt: "" }, { id: "team-a", maxSandboxes: 2, maxMemory: 1024, createdAt: "" });
  assert.throws(() => t.create("team-a"), { code: "conflict" });
  assert.throws(() => t.create("Bad Name"), { code: "invalid_argument" });
  assert.equal(t.setQuota("team-a", { maxSandboxes: 5 }).maxSandboxes, 5);
  assert.deepEqual(t.list().map((x) => x.id), ["local", "team-a"]);
});
