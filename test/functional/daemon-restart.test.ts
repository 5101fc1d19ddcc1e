// Restart safety: sandboxes outlive a SIGKILLed daemon, a new daemon takes
// them over (files intact), and a create cut short by SIGKILL leaves
// nothing behind once the daemon is back.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { freshState, type TestState } from "../helpers/state.js";
import { findLeaks } from "../helpers/leaks.js";
import { request } from "../helpers/daemon.js";
import { spawnDaemon } from "../../src/server/spawn.js";

describe("daemon restart", () => {
  let t: TestState;
  let key: string;
  before(async () => {
    t = await freshState("restart");
    key = t.s.tenants.createKey("restart").key;
  });
  after(async () => t.close());

  /** corrald as its own process, as an operator runs it. */
  const daemon = () => spawnDaemon(t.stateDir, { CORRAL_CGROUP_PARENT: t.cgroupParent });

  async function kill9(proc: ChildProcess): Promise<void> {
    const gone = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await gone;
  }

  const exec = async (url: string, id: string, cmd: string) => {
    const r = await request(url, "POST", `/v1/sandboxes/${id}/exec`, { key, json: { cmd } });
    const events = r.text.trim().split("\n").map((l) => JSON.parse(l) as { type: string; data?: string; exitCode?: number });
    return {
      exit: events.find((e) => e.type === "exit")?.exitCode,
      stdout: events.filter((e) => e.type === "stdout").map((e) => Buffer.from(e.data!, "base64").toString()).join(""),
    };
  };

  it("keeps 20 sandboxes running and usable across a SIGKILL of the daemon", async () => {
    let d = await daemon();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const persistent = i % 2 === 1;
      const r = await request(d.url, "POST", "/v1/sandboxes", {
        key,
        json: { template: "busybox", name: `r${i}`, lifetime: { mode: persistent ? "persistent" : "ephemeral" } },
      });
      assert.equal(r.status, 201, r.text);
      const id = r.json<{ id: string }>().id;
      ids.push(id);
      assert.equal((await exec(d.url, id, `echo before-${i} > /work/mark`)).exit, 0);
    }
    await kill9(d.proc);
    d = await daemon();
    try {
      const list = await request(d.url, "GET", "/v1/sandboxes", { key });
      const listed = list.json<{ sandboxes: { id: string; status: string }[] }>().sandboxes;
      assert.deepEqual(listed.map((s) => s.id).sort(), [...ids].sort());
      assert.ok(listed.every((s) => s.status === "running"));
      for (const [i, id] of ids.entries()) {
        const r = await exec(d.url, id, "cat /work/mark");
        assert.equal(r.stdout, `before-${i}\n`);
      }
    } finally {
      await kill9(d.proc);
    }
  });

  it("leaves nothing of a create that a SIGKILL cut short", async () => {
    for (const delayMs of [5, 20, 60]) {
      const d = await daemon();
      const pending = request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", name: `cut-${delayMs}` } }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, delayMs));
      await kill9(d.proc);
      await pending;
      const again = await daemon();
      try {
        // Either it finished before the kill (and is whole) or it is gone.
        const got = await request(again.url, "GET", `/v1/sandboxes/cut-${delayMs}`, { key });
        if (got.status === 200) {
          assert.equal((await exec(again.url, `cut-${delayMs}`, "true")).exit, 0);
          assert.equal((await request(again.url, "DELETE", `/v1/sandboxes/cut-${delayMs}`, { key })).status, 204);
        } else assert.equal(got.status, 404);
      } finally {
        await kill9(again.proc);
      }
      const rows = t.s.db.prepare("SELECT id FROM sandboxes WHERE name LIKE 'cut-%'").all();
      assert.deepEqual(rows, []);
    }
    // Only the 20 sandboxes of the first test remain on the host.
    const leaks = await findLeaks(t.stateDir, t.cgroupParent, t.s.cgroupMode);
    const live = new Set((t.s.db.prepare("SELECT id FROM sandboxes").all() as { id: string }[]).map((r) => r.id));
    assert.deepEqual(leaks.filter((l) => ![...live].some((id) => l.includes(id))), []);
  });

  it("keeps a microVM running across a SIGKILL of the daemon, and leaves nothing of a VM create cut short", async () => {
    let d = await daemon();
    try {
      const r = await request(d.url, "POST", "/v1/sandboxes", {
        key,
        json: { template: "busybox", name: "vm-pet", backend: "vm", lifetime: { mode: "persistent" }, resources: { disk: "64M" } },
      });
      assert.equal(r.status, 201, r.text);
      assert.equal((await exec(d.url, "vm-pet", "echo kept > /work-mark; sync")).exit, 0);
    } finally {
      await kill9(d.proc);
    }
    d = await daemon();
    try {
      const got = await request(d.url, "GET", "/v1/sandboxes/vm-pet", { key });
      assert.equal(got.json<{ status: string }>().status, "running");
      assert.equal((await exec(d.url, "vm-pet", "cat /work-mark")).stdout, "kept\n");
      // A VM create killed mid-boot: the shim it started is detached and
      // goes on booting; the next daemon's reconcile must still remove it all.
      const pending = request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", name: "vm-cut", backend: "vm" } }).catch(() => undefined);
      await new Promise((res) => setTimeout(res, 1500));
      await kill9(d.proc);
      await pending;
      d = await daemon();
      const cut = await request(d.url, "GET", "/v1/sandboxes/vm-cut", { key });
      if (cut.status === 200) assert.equal((await request(d.url, "DELETE", "/v1/sandboxes/vm-cut", { key })).status, 204);
      else assert.equal(cut.status, 404);
      assert.equal((await request(d.url, "DELETE", "/v1/sandboxes/vm-pet", { key })).status, 204);
    } finally {
      await kill9(d.proc);
    }
    const leaks = await findLeaks(t.stateDir, t.cgroupParent, t.s.cgroupMode);
    const live = new Set((t.s.db.prepare("SELECT id FROM sandboxes").all() as { id: string }[]).map((r) => r.id));
    assert.deepEqual(leaks.filter((l) => ![...live].some((id) => l.includes(id))), []);
    assert.deepEqual(t.s.db.prepare("SELECT id FROM sandboxes WHERE name LIKE 'vm-%'").all(), []);
  });
});
