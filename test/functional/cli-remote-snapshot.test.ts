// corral snapshot through a real corrald: one round of create, ls,
// restore and rm on a microVM (QEMU, TCG here: slow, so one round), and the
// snapshots of one tenant unseen by another's key.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { corralCli, corralRemote } from "../helpers/cli.js";
import { testDaemon } from "../helpers/daemon.js";
import { freshState, type TestState } from "../helpers/state.js";
import type { Daemon } from "../../src/server/daemon.js";

describe("corral snapshot through corrald", () => {
  let t: TestState;
  let d: Daemon;
  let key: string;
  let otherKey: string;
  const corral = (...args: string[]) => corralRemote(d.url, key, ...args);

  before(async () => {
    t = await freshState("clisnap");
    d = await testDaemon(t);
    key = t.s.tenants.createKey("vmuser").key;
    otherKey = t.s.tenants.createKey("other").key;
  });
  after(async () => {
    await d?.close();
    await t?.close();
  });

  it("create, ls, restore, rm: each tenant its own", async () => {
    const made = await corral("create", "--backend", "vm", "-t", "busybox", "--name", "vmsrc", "-m", "192M");
    assert.deepEqual([made.code, made.stdout], [0, "vmsrc\n"], made.stderr);
    assert.equal((await corral("exec", "vmsrc", "--", "sh", "-c", "echo in-ram > /dev/shm/x")).code, 0);

    const saved = await corral("snapshot", "create", "vmsrc", "snap1");
    assert.equal(saved.code, 0, saved.stderr);
    const snap = d.sandboxes.listSnapshots({ tenant: "vmuser" });
    assert.deepEqual(snap.map((x) => x.name), ["snap1"]);
    assert.match(saved.stdout, /^snap1 \S+\n$/);
    const taken = await corral("snapshot", "create", "vmsrc", "snap1");
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /^corral: .*already exists.*\n$/);

    const listed = await corral("snapshot", "ls");
    assert.match(listed.stdout, /^NAME\s+SOURCE\s+TEMPLATE\s+SIZE\s+CREATED\nsnap1\s+vmsrc\s+busybox\s+\S+\s+\S+\n$/);
    // Another tenant sees none of it: another key's, or the state dir's own (local).
    const other = (...args: string[]) => corralRemote(d.url, otherKey, ...args);
    assert.equal((await other("snapshot", "ls")).stdout, "NAME   SOURCE   TEMPLATE   SIZE   CREATED\n");
    assert.equal((await corralCli(t, "snapshot", "ls")).stdout, "NAME   SOURCE   TEMPLATE   SIZE   CREATED\n");
    const notTheirs = await other("snapshot", "restore", "snap1");
    assert.deepEqual([notTheirs.code, notTheirs.stderr], [1, 'corral: no snapshot named "snap1"\n']);
    assert.deepEqual([(await other("snapshot", "rm", "snap1")).code, d.sandboxes.listSnapshots({ tenant: "vmuser" }).length], [1, 1]);

    const restored = await corral("snapshot", "restore", "snap1", "--name", "vmcopy");
    assert.deepEqual([restored.code, restored.stdout], [0, "vmcopy\n"], restored.stderr);
    assert.equal(d.sandboxes.record("vmcopy").tenant, "vmuser");
    const inCopy = await corral("exec", "vmcopy", "--", "sh", "-c", "cat /dev/shm/x; hostname");
    assert.deepEqual([inCopy.code, inCopy.stdout], [0, "in-ram\nvmcopy\n"], inCopy.stderr);

    assert.deepEqual(await corral("snapshot", "rm", "snap1"), { code: 0, stdout: "", stderr: "" });
    assert.deepEqual(d.sandboxes.listSnapshots({ tenant: "vmuser" }), []);
    const gone = await corral("snapshot", "restore", "snap1");
    assert.deepEqual([gone.code, gone.stderr], [1, 'corral: no snapshot named "snap1"\n']);
    assert.equal((await corral("rm", "vmsrc", "vmcopy")).code, 0);
  });
});
