import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { entryInfo, permissions } from "./entry-info.js";
import { parseAccounts } from "./accounts.js";
import { FileType } from "./gen/filesystem/filesystem_pb.js";

describe("entry info", () => {
  it("prints permissions as Go's FileMode.String() does", () => {
    assert.equal(permissions("file", 0o644), "-rw-r--r--");
    assert.equal(permissions("dir", 0o755), "drwxr-xr-x");
    assert.equal(permissions("symlink", 0o777), "Lrwxrwxrwx");
    assert.equal(permissions("dir", 0o1777), "dtrwxrwxrwx");
    assert.equal(permissions("file", 0o4755), "urwxr-xr-x");
    assert.equal(permissions("other", 0o600), "-rw-------");
  });

  it("names owners from the sandbox's accounts, numbers those it has none for, and resolves a symlink's target", () => {
    const a = parseAccounts("user:x:1000:1000::/home/user:/bin/bash\n", "user:x:1000:\n");
    const e = entryInfo("/home/user/l", { type: "symlink", size: 3, mode: 0o777, mtimeMs: 1_700_000_000_123, uid: 1000, gid: 7, target: "../x" }, a);
    assert.equal(e.name, "l");
    assert.equal(e.type, FileType.SYMLINK);
    assert.equal(e.owner, "user");
    assert.equal(e.group, "7");
    assert.equal(e.size, 3n);
    assert.equal(e.symlinkTarget, "/home/x");
    assert.deepEqual([e.modifiedTime?.seconds, e.modifiedTime?.nanos], [1_700_000_000n, 123_000_000]);
  });
});
