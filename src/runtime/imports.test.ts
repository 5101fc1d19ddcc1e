// The runtime knows backends only through backends/backend.ts and
// backends/registry.ts: nothing under a backend's own folder.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** src/runtime in the source tree (this file runs from dist/src/runtime). */
const RUNTIME_SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../src/runtime");
/** src/backends: only its own files (backend.ts, registry.ts) are the runtime's to import, none of a backend's folder. */
const BACKENDS = path.resolve(RUNTIME_SRC, "../backends");

/** Every module specifier a file names: static imports and re-exports, and dynamic import(). */
export function importsOf(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/\b(?:import|export)\b[^'";]*?\bfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm)) {
    specs.push((m[1] ?? m[2] ?? m[3])!);
  }
  return specs;
}

test("the import reader sees static, type-only, re-exported, side-effect and dynamic imports", () => {
  // Written with @ for the folder, so this file itself imports nothing it names.
  const text = [
    'import { a } from "./x.js";',
    'import type {\n  B,\n  C,\n} from "@/vm/vm-backend.js";',
    'export { d } from "@/container/crun.js";',
    'import "./side.js";',
    'const m = await import("@/gvisor/runsc.js");',
  ]
    .join("\n")
    .replaceAll("@", "../backends");
  assert.deepEqual(importsOf(text), ["./x.js", "../backends/vm/vm-backend.js", "../backends/container/crun.js", "./side.js", "../backends/gvisor/runsc.js"]);
});

test("src/runtime imports nothing under a backend's own folder (backends/container, vm, gvisor ...)", () => {
  const files = fs.readdirSync(RUNTIME_SRC).filter((f) => f.endsWith(".ts"));
  assert.ok(files.includes("sandboxes.ts"), `read ${RUNTIME_SRC}`);
  const bad: string[] = [];
  for (const f of files) {
    for (const spec of importsOf(fs.readFileSync(path.join(RUNTIME_SRC, f), "utf8"))) {
      if (!spec.startsWith(".")) continue;
      const target = path.resolve(RUNTIME_SRC, spec);
      if (target.startsWith(BACKENDS + path.sep) && path.dirname(target) !== BACKENDS) bad.push(`${f}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});
