// api/openapi.yaml's SandboxSpec and ResolvedSpec must be what zod's schema
// (src/core/sandbox-spec.ts) gives today, so the spec, the SDK's types
// (generated from it) and the server's one validator (parseSpec) cannot
// disagree. On a failure: npm run build && node scripts/generate-spec-schema.mjs
// && node sdk/generate.mjs, and commit the result.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parseSpec } from "../core/sandbox-spec.js";
import { OPENAPI_PATH } from "./openapi.js";
import { resolvedSpecJsonSchema, sandboxSpecJsonSchema, withGeneratedSchemas } from "./spec-schema.js";

test("the schemas in api/openapi.yaml are the ones zod makes", () => {
  const text = fs.readFileSync(OPENAPI_PATH, "utf8");
  assert.ok(withGeneratedSchemas(text) === text, "api/openapi.yaml's generated schemas are stale: run scripts/generate-spec-schema.mjs");
});

test("the input schema takes sizes as text and documents the defaults; the output one has bytes", () => {
  const input = sandboxSpecJsonSchema() as { properties: { resources: { properties: Record<string, { type: unknown; default?: unknown }> } } };
  assert.deepEqual(input.properties.resources.properties["memory"]?.type, ["number", "string"]);
  const resolved = parseSpec({ template: "busybox" });
  assert.equal(input.properties.resources.properties["memory"]?.default, resolved.resources.memory);
  assert.equal(input.properties.resources.properties["disk"]?.default, resolved.resources.disk);
  const ajv = new Ajv2020({ strict: false });
  assert.equal(ajv.validate(resolvedSpecJsonSchema(), JSON.parse(JSON.stringify(resolved))), true, JSON.stringify(ajv.errors));
  assert.equal(ajv.validate(sandboxSpecJsonSchema(), { template: "busybox", resources: { memory: "512M" } }), true, JSON.stringify(ajv.errors));
  assert.equal(ajv.validate(sandboxSpecJsonSchema(), { template: "busybox", resource: {} }), false);
});
