// Threat: a full disk leaving partial files and half-recorded state
// (issue 18): an upload that failed with 507 left its partial file in the
// sandbox; on a full state filesystem `stop` of a persistent sandbox
// answered 500 after the stop had happened (SQLITE_FULL recording it).
// Now the agent removes a failed upload's file, what has happened is
// recorded from a reserve (runtime/state-space.ts), and the rest is 507.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { findLeaks } from "../helpers/leaks.js";
import { Sandboxes } from "../../src/runtime/sandboxes.js";
import { startDaemon, type Daemon } from "../../src/server/daemon.js";
import { removeEmptyParent } from "../../src/host/cgroups.js";
import { pino } from "pino";

type Err = { error: { code: string } };

for (const backend of ["container", "vm"] as const) {
  describe(`an upload that fills a ${backend} sandbox's disk`, () => {
    let t: TestState;
    let d: Daemon;
    let key: string;
    before(async () => {
      t = await freshState(`fill-${backend}`);
      d = await testDaemon(t);
      key = t.s.tenants.createKey("fill").key;
    });
    after(async () => {
      await d.close();
      await t.close();
    });

    it("answers 507 and leaves no partial file", async () => {
      const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", backend, resources: { memory: "128M", disk: "16M" } } });
      assert.equal(r.status, 201, r.text);
      const id = r.json<{ id: string }>().id;
      const put = (p: string, body: Buffer) =>
        request(d.url, "PUT", `/v1/sandboxes/${id}/files?path=${encodeURIComponent(p)}`, { key, body, headers: { "content-type": "application/octet-stream" } });
      const big = await put("/work/big", Buffer.alloc(48 * 1024 * 1024, 7));
      assert.equal(big.status, 507, big.text);
      assert.equal(big.json<Err>().error.code, "sandbox_enospc");
      const stat = await request(d.url, "GET", `/v1/sandboxes/${id}/files/stat?path=/work/big`, { key });
      assert.equal(stat.status, 404, `the partial file is gone: ${stat.text}`);
      // The room it took is back: a small file fits.
      assert.equal((await put("/work/small", Buffer.from("ok"))).status, 200);
      assert.equal((await request(d.url, "DELETE", `/v1/sandboxes/${id}`, { key })).status, 204);
    });
  });
}

describe("a full state filesystem", () => {
  let base: string;
  let mnt: string;
  let stateDir: string;
  let s: Sandboxes;
  let d: Daemon;
  let key: string;
  const cgroupParent = `corral-test-fullstate-${randomBytes(3).toString("hex")}`;
  before(async () => {
    base = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-fullstate-"));
    await fsp.chmod(base, 0o711);
    mnt = path.join(base, "fs");
    await fsp.mkdir(mnt);
    // Small enough to fill in a moment, large enough for the busybox template.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=96m,mode=0711", "corral-test-full", mnt]);
    stateDir = path.join(mnt, "state");
    s = await Sandboxes.open({ stateDir, cgroupParent });
    d = await startDaemon({ stateDir, cgroupParent, listen: { host: "127.0.0.1", port: 0 }, logger: pino({ level: "silent" }), validateResponses: true });
    key = s.tenants.createKey("full").key;
  });
  after(async () => {
    await d.close();
    await fsp.rm(path.join(stateDir, "filler"), { force: true });
    for (const sb of await s.list()) await s.destroy(sb.id).catch(() => {});
    const mode = s.cgroupMode;
    s.close();
    const leaks = await findLeaks(stateDir, cgroupParent, mode);
    await removeEmptyParent(mode, cgroupParent);
    execFileSync("umount", [mnt]);
    await fsp.rm(base, { recursive: true, force: true });
    assert.deepEqual(leaks, []);
  });

  const fill = () => {
    try {
      execFileSync("dd", ["if=/dev/zero", `of=${path.join(stateDir, "filler")}`, "bs=1M"], { stdio: "ignore" });
    } catch {
      // dd ends with ENOSPC: the point.
    }
  };
  const rows = () => (s.db.prepare("SELECT id, state FROM sandboxes").all() as { id: string; state: string }[]).map((r) => `${r.id}:${r.state}`).sort();

  it("records a stop that happened, refuses a create with 507, and starts again once there is room", async () => {
    const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", lifetime: { mode: "persistent" } } });
    assert.equal(r.status, 201, r.text);
    const id = r.json<{ id: string }>().id;
    fill();
    const stopped = await request(d.url, "POST", `/v1/sandboxes/${id}/stop`, { key });
    assert.equal(stopped.status, 200, stopped.text);
    assert.deepEqual(rows(), [`${id}:stopped`]);
    const ev = s.db.prepare("SELECT type FROM events WHERE sandbox_id = ? ORDER BY id DESC LIMIT 1").get(id) as { type: string };
    assert.equal(ev.type, "stopped");
    const before = fs.readdirSync(path.join(stateDir, "sandboxes"));
    const refused = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", lifetime: { mode: "persistent" } } });
    assert.equal(refused.status, 507, refused.text);
    assert.equal(refused.json<Err>().error.code, "storage_full");
    assert.deepEqual(rows(), [`${id}:stopped`], "no row of the refused create");
    assert.deepEqual(fs.readdirSync(path.join(stateDir, "sandboxes")), before, "no directory of it");
    await fsp.rm(path.join(stateDir, "filler"));
    const started = await request(d.url, "POST", `/v1/sandboxes/${id}/start`, { key });
    assert.equal(started.status, 200, started.text);
    const ex = await request(d.url, "POST", `/v1/sandboxes/${id}/exec`, { key, json: { cmd: "echo up" } });
    assert.ok(ex.text.includes(Buffer.from("up\n").toString("base64")), ex.text);
  });
});
