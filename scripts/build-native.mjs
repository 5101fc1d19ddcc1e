// Builds the static native binaries (the in-sandbox agent, the launcher,
// the microVM init) with musl. Skips a binary whose output is newer than its source.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "dist", "native");
fs.mkdirSync(out, { recursive: true });

const targets = [
  ["src/agent/native/agent.c", "corral-agent"],
  ["src/backends/container/native/launch.c", "corral-launch"],
  ["src/backends/vm/native/init.c", "corral-init"],
];
const cc = process.env.CORRAL_CC ?? "musl-gcc";
for (const [src, name] of targets) {
  const srcPath = path.join(root, src);
  const dst = path.join(out, name);
  if (fs.existsSync(dst) && fs.statSync(dst).mtimeMs > fs.statSync(srcPath).mtimeMs) continue;
  const args = ["-static", "-Os", "-Wall", "-Wextra", "-Werror", "-o", dst, srcPath];
  try {
    execFileSync(cc, args, { stdio: "inherit" });
    execFileSync("strip", [dst]);
  } catch (e) {
    console.error(`build-native: ${cc} ${args.join(" ")} failed`);
    process.exit(1);
  }
  console.log(`build-native: ${path.relative(root, dst)} (${fs.statSync(dst).size} bytes)`);
}
