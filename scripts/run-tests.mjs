// Runs every test file under dist/ with node's test runner: unit tests
// beside the code, then the end-to-end suites in test/. Files run in
// parallel (two at a time on this 2-core machine); each suite owns a fresh
// temporary state dir.
//
// A hang must fail the run with its name, not outlast CI's clock:
// - a test or suite running past TEST_TIMEOUT_MS fails (the longest
//   suite, churn's 2,000 cycles, takes about 90 s), and its file's
//   process exits once its tests are over (--test-force-exit) even if
//   the hung test left handles open;
// - past RUN_DEADLINE_MS (the 25-minute budget less room for setup) the
//   processes still running are printed, then killed.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const TEST_TIMEOUT_MS = 300_000;
const RUN_DEADLINE_MS = Number(process.env.CORRAL_TEST_DEADLINE_MS ?? 20 * 60_000);

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
// A process group of its own, so the deadline can end every test process.
const runner = spawn(
  process.execPath,
  ["--test", `--test-concurrency=${concurrency}`, `--test-timeout=${TEST_TIMEOUT_MS}`, "--test-force-exit", "--test-reporter=spec", ...files],
  { stdio: "inherit", detached: true },
);
const killAll = (signal) => {
  try {
    process.kill(-runner.pid, signal);
  } catch {
    // already gone
  }
};
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => killAll(signal));
const deadline = setTimeout(() => {
  console.error(`\n# the tests ran past ${RUN_DEADLINE_MS / 1000} s; the processes still running, then killed:`);
  spawnSync("sh", ["-c", "ps -N --ppid 2 -p 2 -o pid,ppid,stat,etime,wchan:24,args --forest | cut -c1-400"], { stdio: "inherit" });
  killAll("SIGKILL");
}, RUN_DEADLINE_MS);
runner.on("exit", (code, signal) => {
  clearTimeout(deadline);
  process.exit(code ?? (signal ? 1 : 0));
});
