// The committed API types and operation ids must be exactly what the
// generator makes from api/openapi.yaml today, so they cannot drift from
// the spec. On a failure, run `node sdk/generate.mjs` and commit the result.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the first ancestor with sdk/generate.mjs (works from sdk/src and dist/sdk/src). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "sdk", "generate.mjs"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find sdk/generate.mjs above this test");
    dir = up;
  }
  return dir;
}

describe("api-types.ts and api-operations.ts", () => {
  it("are what sdk/generate.mjs makes from api/openapi.yaml", () => {
    const root = repoRoot();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "corral-sdk-types-"));
    try {
      execFileSync(process.execPath, [path.join(root, "sdk", "generate.mjs"), tmp], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
      for (const name of ["api-types.ts", "api-operations.ts"]) {
        const fresh = fs.readFileSync(path.join(tmp, name), "utf8");
        const committed = fs.readFileSync(path.join(root, "sdk", "src", name), "utf8");
        assert.ok(fresh === committed, `sdk/src/${name} is stale: run \`node sdk/generate.mjs\``);
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
