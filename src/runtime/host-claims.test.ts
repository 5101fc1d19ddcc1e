import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { HostClaims } from "./host-claims.js";

test("a cgroup parent has one owner while that state dir records it; then it passes on", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "corral-claims-"));
  try {
    const claims = HostClaims.open(path.join(tmp, "host"));
    const a = path.join(tmp, "a");
    const b = path.join(tmp, "b");
    for (const d of [a, b]) fs.mkdirSync(d);
    const record = (dir: string, parent: string) => () => fs.writeFileSync(path.join(dir, "cgroup-parent"), `${parent}\n`);
    claims.claimCgroupParent("shared", a, record(a, "shared"));
    claims.claimCgroupParent("shared", a, record(a, "shared")); // its owner again
    let recorded = false;
    assert.throws(() => claims.claimCgroupParent("shared", b, () => (recorded = true)), { code: "conflict", message: `cgroup parent shared belongs to the state dir ${a}: give ${b} another (CORRAL_CGROUP_PARENT) or none (it then derives its own)` });
    assert.equal(recorded, false, "a refused claim records nothing");
    // The owner given another parent: "shared" is free.
    fs.writeFileSync(path.join(a, "cgroup-parent"), "other\n");
    claims.claimCgroupParent("shared", b, record(b, "shared"));
    // The owner deleted: likewise, and forgetGone drops its claims.
    fs.rmSync(b, { recursive: true });
    claims.claimCgroupParent("shared", a, record(a, "shared"));
    fs.rmSync(a, { recursive: true });
    claims.forgetGone();
    claims.close();
    const db = new Database(path.join(tmp, "host", "claims.db"));
    assert.equal(db.prepare("SELECT count(*) AS n FROM cgroup_parents").pluck().get(), 0);
    db.close();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
