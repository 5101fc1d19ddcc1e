// Builds the static native binaries (the in-sandbox agent, the launcher,
// the microVM init) with musl. Skips a binary whose output is newer than
// every .c and .h file of its source folders.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "dist", "native");
fs.mkdirSync(out, { recursive: true });

/** What the agent and the init share (src/native/line.h). */
const shared = ["src/native/line.c"];

/** The agent's .c files: every one in its folder (the fuzz target is in fuzz/), and the shared ones. */
function agentSources() {
  const dir = "src/agent/native";
  const own = fs
    .readdirSync(path.join(root, dir))
    .filter((f) => f.endsWith(".c"))
    .sort()
    .map((f) => path.join(dir, f));
  return [...own, ...shared];
}

// The agent is several files compiled together; -flto lets the compiler
// inline across them as it did when the agent was one file (the stripped
// binary is the same 83,192 bytes as the one-file build; without -flto
// 87,280).
const targets = [
  { name: "corral-agent", srcs: agentSources(), flags: ["-flto"] },
  { name: "corral-launch", srcs: ["src/backends/container/native/launch.c"], flags: [] },
  { name: "corral-init", srcs: ["src/backends/vm/native/init.c", "src/backends/vm/native/guest-net.c", ...shared], flags: [] },
  { name: "corral-netjoin", srcs: ["src/network/native/netjoin.c"], flags: [] },
];
const cc = process.env.CORRAL_CC ?? "musl-gcc";

/** Newest mtime of the .c and .h files beside the target's sources. */
function newestSource(srcs) {
  const dirs = new Set(srcs.map((s) => path.dirname(path.join(root, s))));
  let newest = 0;
  for (const dir of dirs)
    for (const f of fs.readdirSync(dir))
      if (f.endsWith(".c") || f.endsWith(".h")) newest = Math.max(newest, fs.statSync(path.join(dir, f)).mtimeMs);
  return newest;
}

for (const { name, srcs, flags } of targets) {
  const dst = path.join(out, name);
  if (fs.existsSync(dst) && fs.statSync(dst).mtimeMs > newestSource(srcs)) continue;
  const args = ["-static", "-Os", ...flags, "-Wall", "-Wextra", "-Werror", "-o", dst, ...srcs.map((s) => path.join(root, s))];
  try {
    execFileSync(cc, args, { stdio: "inherit" });
    execFileSync("strip", [dst]);
  } catch (e) {
    console.error(`build-native: ${cc} ${args.join(" ")} failed`);
    process.exit(1);
  }
  console.log(`build-native: ${path.relative(root, dst)} (${fs.statSync(dst).size} bytes)`);
}
