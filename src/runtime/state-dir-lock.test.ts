import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { daemonServes, servingDaemon, StateDirLock } from "./state-dir-lock.js";

test("the lock's record and credential: 0600, read by servingDaemon, gone at release; a crash's are removed by the next holder", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-lock-"));
  try {
    assert.equal(await servingDaemon(dir), undefined);
    const lock = StateDirLock.acquire(dir);
    assert.ok(daemonServes(dir));
    // Held but not yet announced: waited for, then one line.
    await assert.rejects(servingDaemon(dir, 200), { code: "conflict", message: /has not started serving/ });
    lock.record({ pid: process.pid, url: "http://127.0.0.1:1", since: "now" }, "crl_000000000000_secret");
    for (const f of ["daemon.json", "daemon.key"]) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
    assert.deepEqual(await servingDaemon(dir), { pid: process.pid, url: "http://127.0.0.1:1", since: "now", key: "crl_000000000000_secret" });
    lock.release();
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith("daemon.") && f !== "daemon.lock"), []);
    assert.equal(await servingDaemon(dir), undefined);
    // What a SIGKILLed daemon leaves: both files, no lock. The next holder removes them.
    fs.writeFileSync(path.join(dir, "daemon.json"), JSON.stringify({ pid: 1, url: "http://dead", since: "then" }));
    fs.writeFileSync(path.join(dir, "daemon.key"), "crl_111111111111_stale");
    assert.equal(await servingDaemon(dir), undefined, "no lock: nobody serves, whatever the files say");
    const next = StateDirLock.acquire(dir);
    assert.ok(!fs.existsSync(path.join(dir, "daemon.key")) && !fs.existsSync(path.join(dir, "daemon.json")));
    next.release();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
