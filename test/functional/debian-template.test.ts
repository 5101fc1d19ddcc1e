// The debian template: built from Debian's packages with mmdebstrap on
// first use (into this suite's own state dir), then python3 and git work.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";

describe("debian template", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("debian");
  });
  after(async () => t.close());

  it("builds once, with progress, and runs python3 and git", async () => {
    const phases: string[] = [];
    const sb = await t.s.create({ template: "debian" }, { onProgress: (p) => phases.push(p.phase) });
    assert.ok(phases.includes("download") && phases.includes("finalize"), phases.join(","));
    const out: Buffer[] = [];
    const r = await t.s.exec(sb.id, { argv: ["python3", "-c", "import os, sys; print(os.getpid(), sys.version_info[0])"] }, { onStdout: (b) => out.push(b) });
    assert.equal(r.exitCode, 0);
    const [pid, major] = Buffer.concat(out).toString().trim().split(" ");
    assert.ok(Number(pid) < 10, `pid ${pid}`);
    assert.equal(major, "3");
    assert.equal((await t.s.exec(sb.id, { cmd: "git --version && bash -c 'echo $BASH_VERSION' && ls /etc/ssl/certs | grep -q . " })).exitCode, 0);
    // A second sandbox reuses the built layer.
    const again: string[] = [];
    await t.s.create({ template: "debian" }, { onProgress: (p) => again.push(p.phase) });
    assert.deepEqual(again, []);
  });

  it("boots the same template as a microVM, with python3 on its own kernel", async () => {
    const vm = await t.s.create({ template: "debian", backend: "vm" });
    const out: Buffer[] = [];
    const r = await t.s.exec(vm.id, { cmd: "python3 -c 'import platform; print(platform.release())'; id -un; stat -c %U /etc/passwd" }, { onStdout: (b) => out.push(b) });
    assert.equal(r.exitCode, 0);
    const [release, user, owner] = Buffer.concat(out).toString().trim().split("\n");
    assert.match(release ?? "", /cloud-amd64$/);
    assert.deepEqual([user, owner], ["root", "root"]);
  });
});
