// Threat: dead parts reported as alive and left running (issue 18): a
// SIGKILLed container init left the row "running", exec waited 5 s for a
// 504, and cgroups, directories and crun state stayed; a SIGKILLed VM shim
// left QEMU running, unreachable. The daemon's watch now settles such a
// sandbox by itself: its processes ended, an ephemeral one removed, a
// persistent one stopped and startable again; exec answers at once.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";
import { listChildren } from "../../src/host/cgroups.js";
import { processRunning } from "../../src/host/process.js";

async function until<T>(what: string, f: () => T | undefined | false, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

for (const backend of ["container", "vm"] as const) {
  describe(`a ${backend} sandbox whose host side dies`, () => {
    let t: TestState;
    let d: Daemon;
    let key: string;
    before(async () => {
      t = await freshState(`dead-${backend}`);
      d = await testDaemon(t);
      key = t.s.tenants.createKey("dead").key;
    });
    after(async () => {
      await d.close();
      await t.close();
    });

    const dir = (id: string) => path.join(t.stateDir, "sandboxes", id);
    const pidIn = (file: string) => Number(fs.readFileSync(file, "utf8").trim().split(" ")[0]);
    /** The process whose death the watch must notice: crun's init, or the VM's shim. */
    const keeper = (id: string) =>
      backend === "container" ? (JSON.parse(fs.readFileSync(path.join(t.stateDir, "crun", id, "status"), "utf8")) as { pid: number }).pid : pidIn(path.join(dir(id), "shim.pid"));
    const row = (id: string) => t.s.db.prepare("SELECT state FROM sandboxes WHERE id = ?").get(id) as { state: string } | undefined;
    const create = async (mode: "ephemeral" | "persistent") => {
      const r = await request(d.url, "POST", "/v1/sandboxes", {
        key,
        json: { template: "busybox", backend, resources: { memory: "128M" }, lifetime: { mode } },
      });
      assert.equal(r.status, 201, r.text);
      return r.json<{ id: string }>().id;
    };
    const exec = (id: string) => request(d.url, "POST", `/v1/sandboxes/${id}/exec`, { key, json: { cmd: "echo up" } });

    it("removes an ephemeral one with all it had, and exec fails at once with a code", async () => {
      const id = await create("ephemeral");
      assert.equal((await exec(id)).status, 200);
      const victim = keeper(id);
      const vmm = backend === "vm" ? pidIn(path.join(dir(id), "vmm.pid")) : undefined;
      const killedAt = Date.now();
      process.kill(victim, "SIGKILL");
      const r = await exec(id);
      assert.ok([404, 409].includes(r.status), `exec on a dead sandbox: ${r.status} ${r.text}`);
      assert.match(r.json<{ error: { code: string } }>().error.code, /^sandbox_not_(running|found)$/);
      await until("the row to go", () => row(id) === undefined);
      console.log(`# ${backend}: ephemeral settled ${Date.now() - killedAt} ms after the kill`);
      assert.equal(fs.existsSync(dir(id)), false, "its directory");
      assert.equal(fs.existsSync(path.join(t.stateDir, "crun", id)), false, "crun's state");
      assert.ok(!(await listChildren(t.s.cgroupMode, t.cgroupParent)).includes(id), "its cgroup");
      if (vmm !== undefined) assert.equal(processRunning(vmm), false, "QEMU ended");
      const got = await request(d.url, "GET", `/v1/sandboxes/${id}`, { key });
      assert.equal(got.status, 404);
    });

    it(`stops a persistent one (${backend === "vm" ? "QEMU killed" : "init killed"}), which starts again`, async () => {
      const id = await create("persistent");
      assert.equal((await exec(id)).status, 200);
      // A VM's hypervisor this time; the shim notices and ends.
      const victim = backend === "vm" ? pidIn(path.join(dir(id), "vmm.pid")) : keeper(id);
      const others = backend === "vm" ? [keeper(id)] : [];
      const killedAt = Date.now();
      process.kill(victim, "SIGKILL");
      const r = await exec(id);
      assert.equal(r.status, 409, r.text);
      assert.equal(r.json<{ error: { code: string } }>().error.code, "sandbox_not_running");
      await until("the row to say stopped", () => row(id)?.state === "stopped");
      console.log(`# ${backend}: persistent settled ${Date.now() - killedAt} ms after the kill`);
      for (const p of others) assert.equal(processRunning(p), false, `pid ${p} ended`);
      assert.ok(!(await listChildren(t.s.cgroupMode, t.cgroupParent)).includes(id), "its cgroup");
      const info = await request(d.url, "GET", `/v1/sandboxes/${id}`, { key });
      assert.equal(info.json<{ status: string }>().status, "stopped");
      const started = await request(d.url, "POST", `/v1/sandboxes/${id}/start`, { key });
      assert.equal(started.status, 200, started.text);
      const again = await exec(id);
      assert.equal(again.status, 200);
      assert.ok(again.text.includes(Buffer.from("up\n").toString("base64")), again.text);
      assert.equal((await request(d.url, "DELETE", `/v1/sandboxes/${id}`, { key })).status, 204);
    });
  });
}
