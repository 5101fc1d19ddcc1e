#!/usr/bin/env node
// Writes the JSON Schemas of SandboxSpec and ResolvedSpec, made from the
// zod schema in src/core/sandbox-spec.ts, into api/openapi.yaml between its
// two marker lines (src/server/spec-schema.ts). Run after changing the spec
// schema, then regenerate the SDK's types:
//   npm run build && node scripts/generate-spec-schema.mjs && node sdk/generate.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { withGeneratedSchemas } = await import(path.join(root, "dist", "src", "server", "spec-schema.js"));
const file = path.join(root, "api", "openapi.yaml");
const before = fs.readFileSync(file, "utf8");
const after = withGeneratedSchemas(before);
if (after !== before) fs.writeFileSync(file, after, "utf8");
process.stdout.write(after === before ? "api/openapi.yaml is up to date\n" : "api/openapi.yaml: generated schemas rewritten\n");
