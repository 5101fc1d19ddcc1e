// Bad input gets a clear error and loses nothing: invalid specs, unknown
// templates, missing sandboxes, and file paths that try to leave the root.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";
import { findLeaks } from "../helpers/leaks.js";
import { InvalidSpecError } from "../../src/core/errors.js";
import type { AgentClient } from "../../src/agent/client.js";

describe("bad input", () => {
  let t: TestState;
  let id: string;
  let c: AgentClient;
  before(async () => {
    t = await freshState("badinput");
    id = (await t.s.create({ template: "busybox", name: "target" })).id;
    c = await t.s.agent(id);
    await c.writeFile("/etc/shadow", "sandbox-shadow\n");
  });
  after(async () => {
    c.close();
    await t.close();
  });

  it("rejects invalid spec fields by path, creating nothing", async () => {
    await assert.rejects(
      t.s.create({ template: "busybox", resources: { memory: "a lot", pids: 0 }, lifetime: { timeoutSeconds: -1 } }),
      (e: unknown) => {
        assert.ok(e instanceof InvalidSpecError);
        const paths = e.issues.map((i) => i.path).sort();
        assert.deepEqual(paths, ["lifetime.timeoutSeconds", "resources.memory", "resources.pids"]);
        assert.match(e.message, /resources\.memory: memory must be bytes or a size/);
        return true;
      },
    );
    assert.equal((await t.s.list()).length, 1);
  });

  it("names unknown templates and missing sandboxes", async () => {
    await assert.rejects(t.s.create({ template: "nope" }), { code: "template_not_found", status: 404, message: 'no template named "nope"' });
    await assert.rejects(t.s.exec("missing", { cmd: "true" }), { code: "sandbox_not_found", status: 404 });
    await assert.rejects(t.s.destroy("missing"), { code: "sandbox_not_found" });
    await assert.rejects(t.s.exec("../../etc", { cmd: "true" }), { code: "invalid_argument", status: 400 });
    await assert.rejects(t.s.create({ template: "busybox", name: "target" }), { code: "conflict", status: 409 });
  });

  it("keeps file paths inside the sandbox root", async () => {
    // `..` chains stop at the sandbox's /.
    const passwd = (await c.readFileBuffer("/../../../../etc/passwd")).toString();
    assert.ok(passwd.startsWith("root:x:0:0:root:/root:/bin/sh\n"), passwd);
    assert.ok(!passwd.includes("daemon:"), "read the host's /etc/passwd");
    // An absolute symlink resolves inside the sandbox, never on the host.
    assert.equal((await t.s.exec(id, { cmd: "ln -s /etc/shadow /tmp/evil && ln -s ../../../../../etc /tmp/up" })).exitCode, 0);
    assert.equal((await c.readFileBuffer("/tmp/evil")).toString(), "sandbox-shadow\n");
    assert.equal((await c.readFileBuffer("/tmp/up/shadow")).toString(), "sandbox-shadow\n");
    await c.writeFile("/tmp/evil", "through-link\n");
    assert.equal((await c.readFileBuffer("/etc/shadow")).toString(), "through-link\n");
    // Magic links that could lead out are refused.
    await assert.rejects(c.readFileBuffer("/proc/self/root/etc/passwd"), { errno: "ELOOP" });
    await assert.rejects(c.readFileBuffer("/proc/1/cwd/etc/passwd"), { errno: "ELOOP" });
    // Relative and NUL paths are invalid.
    await assert.rejects(c.stat("etc/passwd"), { errno: "EINVAL" });
    await assert.rejects(c.stat("/etc/\0passwd"), { errno: "EINVAL" });
    // remove never follows a symlink: the link goes, its target stays.
    await c.remove("/tmp/evil");
    assert.equal((await c.stat("/etc/shadow")).type, "file");
    await assert.rejects(c.remove("/", { recursive: true }), { errno: "EBUSY" });
  });

  it("leaves nothing behind after all that", async () => {
    c.close();
    await t.s.destroy(id);
    assert.deepEqual(await findLeaks(t.stateDir, t.cgroupParent, t.s.cgroupMode), []);
  });
});
