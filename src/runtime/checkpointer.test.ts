import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { openDatabase, recordEvent, type Db } from "./db.js";
import { Checkpointer, checkpointOnce } from "./checkpointer.js";

function fresh(): { dir: string; file: string; db: Db } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-ckpt-"));
  const file = path.join(dir, "corral.db");
  const db = openDatabase(file);
  db.pragma("wal_autocheckpoint = 0");
  return { dir, file, db };
}

/** Frames in the log as the main connection sees it (a PASSIVE checkpoint reports them). */
const logFrames = (db: Db) => (db.pragma("wal_checkpoint(PASSIVE)") as { log: number }[])[0]!.log;

test("a pass copies the log and starts it over, so the next commit does not", () => {
  const { dir, file, db } = fresh();
  const other = new Database(file);
  try {
    for (let i = 0; i < 20; i++) recordEvent(db, { type: "test", detail: { i } });
    const version = db.pragma("user_version", { simple: true });
    const seen = checkpointOnce(other, undefined);
    // Only the checkpointer's one-page restart is in the log now.
    assert.equal(logFrames(db), 1);
    assert.equal(db.pragma("user_version", { simple: true }), version);
    // Idle: nothing committed since, nothing done (no new frame).
    assert.equal(checkpointOnce(other, seen), seen);
    assert.equal(logFrames(db), 1);
    assert.equal((db.prepare("SELECT count(*) AS n FROM events").get() as { n: number }).n, 20);
  } finally {
    other.close();
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a one-page log is copied but not restarted (two checkpointers would trade restarts)", () => {
  const { dir, file, db } = fresh();
  const a = new Database(file);
  const b = new Database(file);
  try {
    for (let i = 0; i < 5; i++) recordEvent(db, { type: "test" });
    let va = checkpointOnce(a, undefined); // restarts: 1 frame, a's own
    let vb = checkpointOnce(b, undefined); // sees a's commit: copies it, no restart
    assert.equal(logFrames(db), 1);
    const before = vb;
    va = checkpointOnce(a, va);
    vb = checkpointOnce(b, vb);
    assert.equal(vb, before, "b saw no new commit: a did not write again");
    assert.equal(logFrames(db), 1);
  } finally {
    a.close();
    b.close();
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the worker checkpoints in the background and closes", async () => {
  const { dir, file, db } = fresh();
  let failed = false;
  const c = new Checkpointer(file, { intervalMs: 50, onFailure: () => (failed = true) });
  try {
    for (let i = 0; i < 30; i++) recordEvent(db, { type: "test" });
    let frames = Infinity;
    for (let i = 0; i < 60 && frames !== 1; i++) {
      await new Promise((r) => setTimeout(r, 50));
      frames = logFrames(db);
    }
    assert.equal(frames, 1, "the worker started the log over");
  } finally {
    await c.close();
    assert.equal(failed, false, "a close is not a failure");
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a worker that cannot open the database reports it, so its owner checkpoints again", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-ckpt-"));
  try {
    // The worker keeps no event loop alive: this timer does, until it reports.
    let keepAlive: NodeJS.Timeout | undefined;
    const error = await new Promise<Error | undefined>((resolve, reject) => {
      keepAlive = setTimeout(() => reject(new Error("no failure reported")), 10_000);
      new Checkpointer(path.join(dir, "missing.db"), { onFailure: resolve });
    }).finally(() => clearTimeout(keepAlive));
    assert.match(String(error?.message), /SQLITE_CANTOPEN|unable to open/i);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
