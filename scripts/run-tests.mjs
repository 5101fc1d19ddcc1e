// Runs every test file under dist/ with node's test runner: unit tests
// beside the code, then the end-to-end suites in test/. Files run in
// parallel (two at a time on this 2-core machine); each suite owns a fresh
// temporary state dir.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const files = [];
function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    // A compiled test whose source was deleted or renamed is left in dist/
    // by tsc; only tests with a source file run.
    else if (e.name.endsWith(".test.js") && fs.existsSync(p.replace(/^dist\//, "").replace(/\.js$/, ".ts"))) files.push(p);
  }
}
const only = process.argv.slice(2);
if (only.length) files.push(...only);
else ["dist/src", "dist/sdk", "dist/test"].filter((d) => fs.existsSync(d)).forEach(walk);
files.sort();

const concurrency = process.env.CORRAL_TEST_CONCURRENCY ?? "2";
const r = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
