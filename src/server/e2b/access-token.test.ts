import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AccessTokens, TOKEN_KEY_FILE } from "./access-token.js";

describe("access tokens", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "e2b-token-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("are the same for a state dir across daemons, differ per sandbox, and open only their own", () => {
    const a = AccessTokens.forStateDir(dir);
    const b = AccessTokens.forStateDir(dir);
    assert.equal(fs.statSync(path.join(dir, TOKEN_KEY_FILE)).mode & 0o777, 0o600);
    const t = a.tokenOf("0123456789abcdef");
    assert.equal(b.tokenOf("0123456789abcdef"), t);
    assert.notEqual(a.tokenOf("fedcba9876543210"), t);
    assert.ok(b.valid("0123456789abcdef", t));
    assert.ok(!b.valid("fedcba9876543210", t));
    assert.ok(!b.valid("0123456789abcdef", undefined));
    assert.ok(!b.valid("0123456789abcdef", t.slice(1)));
  });

  it("differ between state dirs", () => {
    const other = fs.mkdtempSync(path.join(dir, "other-"));
    assert.notEqual(AccessTokens.forStateDir(other).tokenOf("0123456789abcdef"), AccessTokens.forStateDir(dir).tokenOf("0123456789abcdef"));
  });
});
