import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseAccounts, resolvePath, ROOT } from "./accounts.js";

const USER = { name: "user", uid: 1000, gid: 1000, home: "/home/user" };

describe("accounts", () => {
  it("reads users, and user and group names by id, from passwd and group (the first of a name or id wins)", () => {
    const a = parseAccounts(
      "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\nbroken line\nuser:x:1001:1001::/elsewhere:/bin/sh\ntwin:x:1000:1000::/x:/bin/sh\n",
      "root:x:0:\nshadow:x:42:\nuser:x:1000:\n",
    );
    assert.deepEqual(a.users.get("user"), USER);
    assert.equal(a.userNames.get(1000), "user");
    assert.equal(a.groupNames.get(42), "shadow");
    assert.equal(a.users.size, 3);
  });

  it("always knows root, even from an empty passwd", () => {
    assert.deepEqual(parseAccounts("", "").users.get("root"), ROOT);
  });
});

describe("resolvePath", () => {
  it("resolves as envd does: home for none, relative and ~/, absolute as is, .. and // folded", () => {
    assert.equal(resolvePath("", USER), "/home/user");
    assert.equal(resolvePath("a/b.txt", USER), "/home/user/a/b.txt");
    assert.equal(resolvePath("~", USER), "/home/user");
    assert.equal(resolvePath("~/x", USER), "/home/user/x");
    assert.equal(resolvePath("/etc//passwd", USER), "/etc/passwd");
    assert.equal(resolvePath("../../etc", USER), "/etc");
    assert.equal(resolvePath("a", ROOT), "/root/a");
  });

  it("refuses another user's home and NUL", () => {
    assert.throws(() => resolvePath("~root/x", USER), /only the user's own home/);
    assert.throws(() => resolvePath("a\0b", USER), /NUL/);
  });
});
