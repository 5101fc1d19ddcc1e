// Threat: sandbox code taking over its agent (issue 18): root in the
// sandbox is the agent's uid, so it could ptrace PID 1 or open
// /proc/1/mem read-write and rewrite the process that holds the host's
// connection. The agent makes itself undumpable (PR_SET_DUMPABLE 0), and
// sandbox code lacks CAP_SYS_PTRACE. Containers only: in a microVM the
// guest kernel is the boundary and its root holds every capability there.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";

describe("the agent against its own sandbox (container)", () => {
  let t: TestState;
  let id: string;
  const sh = async (cmd: string) => {
    const out: Buffer[] = [];
    const r = await t.s.exec(id, { cmd: `{ ${cmd}; } 2>&1` }, { onStdout: (b) => out.push(b) });
    return { code: r.exitCode, out: Buffer.concat(out).toString() };
  };
  before(async () => {
    t = await freshState("ptrace");
    id = (await t.s.create({ template: "busybox" })).id;
  });
  after(async () => t.close());

  it("cannot open the agent's memory, environment or fds", async () => {
    assert.match((await sh("cat /proc/1/cmdline | tr '\\0' ' '")).out, /corral-agent/);
    for (const cmd of ["exec 3<>/proc/1/mem", "exec 3</proc/1/mem", "cat /proc/1/environ", "readlink /proc/1/fd/0", "readlink /proc/1/exe", "cat /proc/1/maps"]) {
      const r = await sh(cmd);
      assert.notEqual(r.code, 0, `${cmd}: ${r.out}`);
      // busybox's readlink fails silently; the others say why.
      if (!cmd.startsWith("readlink")) assert.match(r.out, /Permission denied|Operation not permitted/, cmd);
    }
  });

  it("still serves commands, which are dumpable as ever", async () => {
    // A command's own /proc is its to read: execve made it dumpable again.
    const r = await sh("cat /proc/self/environ > /dev/null && ls /proc/self/fd > /dev/null && echo ok");
    assert.equal(r.out, "ok\n");
  });
});
