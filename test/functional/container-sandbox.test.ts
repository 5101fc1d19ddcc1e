// What only a container sandbox shows: pid 1 is the agent from the bind
// mounted /.corral, the host is invisible, its root is a user namespace's,
// the template's layer directory is never written. The behaviour every
// backend shares (exec, files, stdin, timeouts, memory) is in
// shared/sandbox-cases.ts, run by shared-container.test.ts.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import type { SandboxInfo } from "../../src/runtime/sandboxes.js";

describe("container sandbox", () => {
  let t: TestState;
  let sb: SandboxInfo;
  const sh = async (cmd: string) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const r = await t.s.exec(sb.id, { cmd }, { onStdout: (b) => out.push(b), onStderr: (b) => err.push(b) });
    return { ...r, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  };

  before(async () => {
    t = await freshState("basics");
    sb = await t.s.create({ template: "busybox", name: "basics", env: { GREETING: "hello" }, workdir: "/tmp" });
  });
  after(async () => t.close());

  it("has the agent as pid 1", async () => {
    const r = await sh("tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$");
    const [cmdline, mypid] = r.stdout.trim().split("\n");
    assert.match(cmdline ?? "", /^\/\.corral\/corral-agent /);
    assert.ok(Number(mypid) > 1 && Number(mypid) < 100, `shell pid ${mypid}`);
  });

  it("cannot see host processes, files or network", async () => {
    const procs = (await sh("ls /proc | grep -c '^[0-9]'")).stdout.trim();
    assert.ok(Number(procs) < 10, `sees ${procs} processes`);
    assert.equal((await sh(`test -e ${t.stateDir} && echo visible || echo hidden`)).stdout, "hidden\n");
    assert.equal((await sh("test -e /usr/bin/node && echo visible || echo hidden")).stdout, "hidden\n");
    const links = (await sh("ls /sys/class/net")).stdout.trim().split(/\s+/);
    assert.deepEqual(links, ["lo"]);
    assert.equal((await sh("hostname")).stdout, "basics\n");
  });

  it("runs as root of its own user namespace, not the host's", async () => {
    const map = (await sh("cat /proc/self/uid_map")).stdout.trim().split(/\s+/).map(Number);
    assert.equal(map[0], 0);
    // Its own range, above the store's (test/security/uid-isolation.test.ts).
    assert.equal(map[1], t.s.uidBaseOf(sb.id));
    assert.ok(map[1]! > t.s.uidBase);
    assert.equal(map[2], 65536);
  });

  it("never writes to the template's layer", async () => {
    assert.equal((await sh("echo mine > /bin/added && rm /bin/cat && echo ok")).stdout, "ok\n");
    const [layer] = await t.s.store.templateLayerDirs("busybox");
    await fsp.access(path.join(layer!, "bin/cat"));
    await assert.rejects(fsp.access(path.join(layer!, "bin/added")));
    const other = await t.s.create({ template: "busybox" });
    const r = await t.s.exec(other.id, { cmd: "test ! -e /bin/added && test -e /bin/cat" }, {});
    assert.equal(r.exitCode, 0);
    await t.s.destroy(other.id);
  });

  it("streams output before the command ends", async () => {
    const c = await t.s.agent(sb.id);
    try {
      const started = Date.now();
      let firstAt = 0;
      const h = c.exec({ cmd: "echo first; sleep 1; echo second" }, {
        onStdout: () => {
          if (!firstAt) firstAt = Date.now();
        },
      });
      await h.result;
      const ended = Date.now();
      assert.ok(firstAt > 0 && ended - firstAt >= 800, `first chunk ${firstAt - started} ms, end ${ended - started} ms`);
    } finally {
      c.close();
    }
  });

});
