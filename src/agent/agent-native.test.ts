// The C agent on its own, outside any sandbox: native/test_agent.py drives
// the built binary over its socket, one test per behaviour (exec, stdin,
// signals, timeouts, files, path escapes under --root, malformed frames,
// reaping, RSS, a fuzz pass, the --vsock listener). A failed behaviour is
// reported by its name; one the host cannot run (vsock loopback) prints a
// SKIP line with the reason, shown here as a diagnostic.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { nativeBinary } from "../host/native.js";

const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../src/agent/native/test_agent.py");
const interactive = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../src/agent/native/test_interactive.py");

test("corral-agent passes its protocol suite", (t) => {
  const r = spawnSync("python3", [script, nativeBinary("corral-agent")], { encoding: "utf8", timeout: 240_000 });
  const lines = r.stdout.split("\n");
  const summary = /^(\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(r.stdout);
  for (const l of lines.filter((x) => x.startsWith("SKIP"))) t.diagnostic(l);
  assert.ok(summary, `no summary from test_agent.py:\n${r.stdout}\n${r.stderr}`);
  // The FAIL lines name each failed behaviour, with the detail after ": ".
  const failures = lines.filter((l) => l.startsWith("FAIL "));
  assert.deepEqual(failures, [], `failed behaviours:\n${failures.join("\n")}`);
  assert.equal(summary[2], "0");
  assert.ok(Number(summary[1]) > 50, `only ${summary[1]} tests passed`);
  assert.equal(r.status, 0, r.stderr);
});

// Terminals, attach and the output ring, procs, watch, rename: native/test_interactive.py.
test("corral-agent passes its interactive suite", (t) => {
  const r = spawnSync("python3", [interactive, nativeBinary("corral-agent")], { encoding: "utf8", timeout: 240_000 });
  const lines = r.stdout.split("\n");
  const summary = /^(\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(r.stdout);
  for (const l of lines.filter((x) => x.startsWith("SKIP") || x.startsWith("  ("))) t.diagnostic(l);
  assert.ok(summary, `no summary from test_interactive.py:\n${r.stdout}\n${r.stderr}`);
  const failures = lines.filter((l) => l.startsWith("FAIL "));
  assert.deepEqual(failures, [], `failed behaviours:\n${failures.join("\n")}`);
  assert.ok(Number(summary[1]) >= 20, `only ${summary[1]} tests passed`);
  assert.equal(r.status, 0, r.stderr);
});

// The same two suites with the resolver the agent uses where openat2 is
// missing (gVisor 2022-12): every file, path-escape, watch and rename case
// again, paths walked fd by fd (native/resolve.c).
for (const [name, file] of [["protocol", script], ["interactive", interactive]] as const) {
  test(`corral-agent passes its ${name} suite with its own resolver (--resolver walk)`, () => {
    const r = spawnSync("python3", [file, nativeBinary("corral-agent"), "--resolver", "walk"], { encoding: "utf8", timeout: 240_000 });
    const failures = r.stdout.split("\n").filter((l) => l.startsWith("FAIL "));
    assert.deepEqual(failures, [], `failed behaviours:\n${failures.join("\n")}`);
    assert.match(r.stdout, /^\d+ passed, 0 failed, \d+ skipped$/m);
    assert.equal(r.status, 0, r.stderr);
  });
}
