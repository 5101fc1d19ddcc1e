#!/usr/bin/env node
// Compiles the envd .proto files (src/server/e2b/proto/, the wire contract
// of E2B's in-sandbox daemon) into TypeScript with @bufbuild/buf and
// @bufbuild/protoc-gen-es (dev dependencies; both run offline), into
// src/server/e2b/gen/ (checked in) or the directory given.
// src/server/e2b/proto-drift.test.ts fails when the checked-in files are
// not what this makes.
// Usage: node scripts/generate-e2b-proto.mjs [output-dir]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const protoDir = path.join(root, "src", "server", "e2b", "proto");
const out = path.resolve(process.argv[2] ?? path.join(root, "src", "server", "e2b", "gen"));
const buf = path.join(root, "node_modules", ".bin", "buf");
const plugin = path.join(root, "node_modules", ".bin", "protoc-gen-es");

const template = {
  version: "v2",
  plugins: [{ local: plugin, out, opt: ["target=ts", "import_extension=js"] }],
};
fs.rmSync(out, { recursive: true, force: true });
execFileSync(buf, ["generate", protoDir, "--template", JSON.stringify(template)], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
