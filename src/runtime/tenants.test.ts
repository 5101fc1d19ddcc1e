import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openDatabase } from "./db.js";
import { Tenants } from "./tenants.js";
import { AuthError } from "../core/errors.js";

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

test("a key verified before is refused once another process has revoked it", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-tenants-"));
  try {
    const file = path.join(dir, "corral.db");
    const daemon = openDatabase(file);
    const cli = openDatabase(file);
    const t = new Tenants(daemon);
    const { id, key } = t.createKey("acme");
    const other = t.createKey("acme");
    assert.equal(t.authenticate(key), "acme");
    assert.equal(t.authenticate(key), "acme"); // from what this process verified
    new Tenants(cli).revokeKey(id);
    assert.throws(() => t.authenticate(key), AuthError);
    assert.equal(t.authenticate(other.key), "acme");
    // A wrong secret under a verified id is refused too.
    assert.throws(() => t.authenticate(other.key.slice(0, -1) + (other.key.endsWith("A") ? "B" : "A")), AuthError);
    daemon.close();
    cli.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the operator credential is the local tenant's, held in memory only, one at a time", () => {
  const db = openDatabase(":memory:");
  const t = new Tenants(db);
  const first = t.newOperatorKey();
  assert.match(first, /^crl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal(t.authenticate(first), "local");
  assert.ok(t.isOperator(first));
  // Not a key of the database: nothing of it is stored, listed or revocable.
  assert.deepEqual(t.keys(), []);
  assert.equal((db.prepare("SELECT count(*) AS n FROM api_keys").get() as { n: number }).n, 0);
  const ordinary = t.createKey("local").key;
  assert.equal(t.authenticate(ordinary), "local");
  assert.ok(!t.isOperator(ordinary));
  // A new one (the next daemon start) replaces it; a wrong secret for its id is refused.
  const second = t.newOperatorKey();
  assert.throws(() => t.authenticate(first), AuthError);
  assert.ok(!t.isOperator(second.slice(0, -1) + (second.endsWith("A") ? "B" : "A")));
  assert.throws(() => t.authenticate(second.slice(0, -1) + (second.endsWith("A") ? "B" : "A")), AuthError);
  t.dropOperatorKey();
  assert.throws(() => t.authenticate(second), AuthError);
  assert.ok(!t.isOperator(second));
});
