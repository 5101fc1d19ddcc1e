import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openDatabase, recordEvent } from "./db.js";

test("migrates a new database, is idempotent, uses WAL", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-db-"));
  try {
    const file = path.join(dir, "corral.db");
    const db = openDatabase(file);
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    assert.ok((db.pragma("user_version", { simple: true }) as number) >= 1);
    recordEvent(db, { type: "test", detail: { a: 1 } });
    db.close();
    const again = openDatabase(file);
    assert.equal((again.prepare("SELECT count(*) AS n FROM events").get() as { n: number }).n, 1);
    const tenants = (again.prepare("SELECT id FROM tenants ORDER BY id").all() as { id: string }[]).map((r) => r.id);
    assert.deepEqual(tenants, ["_pool", "local"]);
    again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("refuses a database from a newer corral", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-db-"));
  try {
    const file = path.join(dir, "corral.db");
    const db = openDatabase(file);
    db.pragma("user_version = 999");
    db.close();
    assert.throws(() => openDatabase(file), /newer than this corral/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
