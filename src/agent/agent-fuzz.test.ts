// A bounded fuzz run of what the agent does with a connection's bytes
// before any effect: frame lengths, the header's JSON, id and op, each op's
// fields, and the error replies built from them (native/fuzz/fuzz_request.c
// links the agent's util.c, json.c, reply.c and request.c, and the shared
// src/native/line.c: no socket, no fork). libFuzzer with AddressSanitizer,
// UndefinedBehaviorSanitizer and LeakSanitizer runs for 30 s from the
// checked-in seeds (valid frames) and regression inputs; any crash, leak or
// undefined behaviour fails the test with the reproducer's path. The fuzzer
// is built into dist/fuzz/, named by a hash of its sources, flags and
// clang's version, so a rerun does not rebuild it. Skipped, with the
// reason, only where clang cannot link a fuzzer at all (scripts/setup.sh
// installs clang and its runtime).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const native = path.join(root, "src/agent/native");
const fuzzDir = path.join(native, "fuzz");
const sources = [
  ...["fuzz/fuzz_request.c", "util.c", "json.c", "reply.c", "request.c"].map((f) => path.join(native, f)),
  path.join(root, "src/native/line.c"),
];
const flags = ["-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror"];
const seconds = 30;

/** Why clang cannot build any libFuzzer binary here, or undefined if it can. */
function fuzzerUnavailable(): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-fuzz-probe-"));
  try {
    const src = path.join(dir, "probe.c");
    fs.writeFileSync(src, "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n");
    const r = spawnSync("clang", [...flags, "-o", path.join(dir, "probe"), src], { encoding: "utf8" });
    if (r.error) return `clang cannot be run (${r.error.message}); scripts/setup.sh installs clang and libclang-rt-14-dev`;
    if (r.status !== 0) return `clang cannot link a libFuzzer binary: ${r.stderr.trim().split("\n").slice(-2).join(" ")}`;
    return undefined;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The fuzzer binary, built unless one from the same inputs exists. */
function buildFuzzer(): string {
  const version = spawnSync("clang", ["--version"], { encoding: "utf8" }).stdout;
  const hash = createHash("sha256").update(version).update(flags.join(" "));
  for (const f of [...sources, path.join(native, "agent.h"), path.join(root, "src/native/line.h")]) hash.update(f).update(fs.readFileSync(f));
  const outDir = path.join(root, "dist/fuzz");
  const bin = path.join(outDir, `fuzz-request-${hash.digest("hex").slice(0, 16)}`);
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(outDir, { recursive: true });
  // builds of other sources are of no use: keep dist/fuzz to one
  for (const f of fs.readdirSync(outDir)) if (f.startsWith("fuzz-request-")) fs.rmSync(path.join(outDir, f), { force: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const r = spawnSync("clang", [...flags, `-I${native}`, "-o", tmp, ...sources], { encoding: "utf8" });
  assert.equal(r.status, 0, `building the fuzzer failed:\n${r.stderr}`);
  fs.renameSync(tmp, bin);
  return bin;
}

test(`the agent's frame and request parser survives ${seconds} s of libFuzzer`, { timeout: 600_000 }, (t) => {
  const why = fuzzerUnavailable();
  if (why) {
    t.skip(why);
    return;
  }
  const bin = buildFuzzer();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "corral-fuzz-"));
  try {
    const corpus = path.join(work, "corpus");
    fs.mkdirSync(corpus);
    const log = path.join(work, "fuzz.log");
    const fd = fs.openSync(log, "w");
    const inputs = ["seeds", "regressions"].map((d) => path.join(fuzzDir, d)).filter((d) => fs.existsSync(d));
    const r = spawnSync(
      bin,
      [
        `-max_total_time=${seconds}`,
        `-dict=${path.join(fuzzDir, "request.dict")}`,
        // a 4 KiB path (PATH_MAX) and a 1 KiB echo in an error must fit
        "-max_len=16384",
        "-timeout=10",
        "-rss_limit_mb=2048",
        `-artifact_prefix=${work}/`,
        "-print_final_stats=1",
        corpus,
        ...inputs,
      ],
      // libFuzzer reports on stderr, a line per new input: to a file, not a pipe buffer
      { stdio: ["ignore", fd, fd], timeout: (seconds + 120) * 1000 },
    );
    fs.closeSync(fd);
    const out = fs.readFileSync(log, "utf8");
    const runs = /^Done (\d+) runs in (\d+) second/m.exec(out);
    if (r.status !== 0 || !runs) {
      // keep the input that failed: the temporary folder goes
      const unit = /Test unit written to (\S+)/.exec(out)?.[1];
      let kept = "";
      if (unit && fs.existsSync(unit)) {
        const dir = path.join(root, "dist/fuzz/artifacts");
        fs.mkdirSync(dir, { recursive: true });
        kept = path.join(dir, path.basename(unit));
        fs.copyFileSync(unit, kept);
      }
      const tail = out.split("\n").slice(-60).join("\n");
      assert.fail(
        `the fuzzer ended with status ${r.status}${r.signal ? ` (${r.signal})` : ""}` +
          (kept ? `; reproducer: ${kept} (run: ${bin} ${kept})` : "") +
          `\n${tail}`,
      );
    }
    const done = out.split("\n").find((l) => /^#\d+\s+DONE\s/.test(l)) ?? "";
    t.diagnostic(`${runs[1]} inputs in ${runs[2]} s from ${inputs.map((d) => path.basename(d)).join(" and ")}: ${done.replace(/\s+/g, " ")}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
