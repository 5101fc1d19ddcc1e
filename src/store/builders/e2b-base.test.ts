// The e2b-base layer over a stand-in for debian's: E2B's user added to the
// base's own account files, a home from /etc/skel, and /etc keeping the
// base's mode and owner (the overlay shows the upper layer's).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { e2bBaseBuilder, E2B_USER } from "./e2b-base.js";

const UID_BASE = 0x60000000;

describe("e2b-base builder", () => {
  let tmp: string;
  let lower: string;
  let upper: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "e2b-base-"));
    lower = path.join(tmp, "lower");
    upper = path.join(tmp, "upper");
    fs.mkdirSync(path.join(lower, "etc", "skel"), { recursive: true });
    fs.mkdirSync(path.join(lower, "home"));
    fs.mkdirSync(upper);
    const files: Record<string, [string, number, number]> = {
      "etc/passwd": ["root:x:0:0:root:/root:/bin/bash\n", 0o644, 0],
      "etc/group": ["root:x:0:\nshadow:x:42:\n", 0o644, 0],
      "etc/shadow": ["root:*:19000:0:99999:7:::\n", 0o640, 42],
      "etc/gshadow": ["root:*::\n", 0o640, 42],
      "etc/skel/.bashrc": ["# bashrc\n", 0o644, 0],
      "etc/skel/.profile": ["# profile\n", 0o644, 0],
    };
    for (const [rel, [text, mode, gid]] of Object.entries(files)) {
      fs.writeFileSync(path.join(lower, rel), text, { mode });
      fs.chownSync(path.join(lower, rel), UID_BASE, UID_BASE + gid);
    }
    for (const d of ["", "etc", "etc/skel", "home"]) fs.chownSync(path.join(lower, d), UID_BASE, UID_BASE);
    fs.chmodSync(path.join(lower, "etc"), 0o755);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("adds the user to the base's account files, with the base's owners and modes unshifted", async () => {
    const r = await e2bBaseBuilder.build(upper, () => {}, { layers: [lower], uidBase: UID_BASE });
    assert.match(r.source, /user=user:1000/);
    const passwd = fs.readFileSync(path.join(upper, "etc/passwd"), "utf8");
    assert.equal(passwd, `root:x:0:0:root:/root:/bin/bash\n${E2B_USER.name}:x:1000:1000::/home/user:/bin/bash\n`);
    assert.match(fs.readFileSync(path.join(upper, "etc/group"), "utf8"), /^shadow:x:42:\nuser:x:1000:\n$/m);
    const shadow = fs.statSync(path.join(upper, "etc/shadow"));
    assert.deepEqual([shadow.mode & 0o7777, shadow.uid, shadow.gid], [0o640, 0, 42]);
    const etc = fs.statSync(path.join(upper, "etc"));
    assert.deepEqual([etc.mode & 0o7777, etc.uid, etc.gid], [0o755, 0, 0]);
  });

  it("gives the user a home with the skeleton's files, owned by the user", () => {
    const home = fs.statSync(path.join(upper, "home/user"));
    assert.deepEqual([home.mode & 0o7777, home.uid, home.gid], [0o755, 1000, 1000]);
    assert.deepEqual(fs.readdirSync(path.join(upper, "home/user")).sort(), [".bashrc", ".profile"]);
    assert.equal(fs.statSync(path.join(upper, "home/user/.bashrc")).uid, 1000);
  });

  it("refuses a base that already has the user", async () => {
    const again = path.join(tmp, "again");
    fs.mkdirSync(again);
    await assert.rejects(e2bBaseBuilder.build(again, () => {}, { layers: [lower, upper], uidBase: UID_BASE }), /already has "user"/);
  });
});
