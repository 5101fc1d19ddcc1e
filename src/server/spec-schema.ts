import { z } from "zod";
import { SandboxSpecSchema } from "../core/sandbox-spec.js";

/**
 * The JSON Schemas of `SandboxSpec` (what a client may send: zod's input
 * view, so "512M" is a valid memory and defaults are documented) and
 * `ResolvedSpec` (what the API answers with: the output view, sizes in
 * bytes), made from the one zod schema in core/sandbox-spec.ts and written
 * into api/openapi.yaml between two marker lines by
 * scripts/generate-spec-schema.mjs. spec-schema.test.ts fails when the
 * file and zod disagree, so the SDK's types (generated from the file) and
 * the server's validator (zod) cannot drift apart.
 */

type Json = Record<string, unknown>;

export const BEGIN_MARK = "    # --- generated from src/core/sandbox-spec.ts by scripts/generate-spec-schema.mjs: do not edit ---";
export const END_MARK = "    # --- end of generated schemas ---";

const SIZE_DESCRIPTION = 'Bytes, or a size such as "512M" or "2GiB" (binary units: 1K = 1024).';

export function sandboxSpecJsonSchema(): Json {
  return convert("input");
}

export function resolvedSpecJsonSchema(): Json {
  return convert("output");
}

function convert(io: "input" | "output"): Json {
  const schema = z.toJSONSchema(SandboxSpecSchema, {
    io,
    target: "draft-2020-12",
    // A size is a transform (string → bytes): no JSON Schema for its output, fixed below.
    unrepresentable: "any",
    override: (ctx) => {
      const def = ctx.zodSchema._zod.def as { type: string; defaultValue?: unknown; in?: unknown };
      const js = ctx.jsonSchema as Json;
      if (def.type === "pipe") {
        if (io === "output") Object.assign(js, { type: "integer", minimum: 0 });
        else js["description"] = SIZE_DESCRIPTION;
      }
      // zod leaves out a default it cannot see through a transform (memory, disk).
      if (def.type === "default" && io === "input" && !("default" in js)) js["default"] = def.defaultValue;
    },
  }) as Json;
  delete schema["$schema"];
  return tidy(schema, io) as Json;
}

/** zod's `.startsWith` is also a non-standard format (its pattern says the same); responses carry no defaults nor a closed shape. */
function tidy(v: unknown, io: "input" | "output"): unknown {
  if (Array.isArray(v)) return v.map((x) => tidy(x, io));
  if (typeof v !== "object" || v === null) return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v as Json)) {
    if (k === "format" && x === "starts_with") continue;
    if (io === "output" && (k === "default" || (k === "additionalProperties" && x === false))) continue;
    out[k] = k === "default" || k === "enum" ? x : tidy(x, io);
  }
  return ordered(out);
}

const KEY_ORDER = ["type", "description", "enum", "pattern", "minimum", "exclusiveMinimum", "maximum", "maxLength", "default", "required", "propertyNames", "properties", "additionalProperties"];

function ordered(o: Json): Json {
  const rank = (k: string) => (KEY_ORDER.includes(k) ? KEY_ORDER.indexOf(k) : KEY_ORDER.length);
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => rank(a) - rank(b)));
}

/** The two generated schemas as the YAML lines that go between the markers (under components/schemas). */
export function generatedBlock(): string {
  const lines = [BEGIN_MARK];
  for (const [name, schema] of [["SandboxSpec", sandboxSpecJsonSchema()], ["ResolvedSpec", resolvedSpecJsonSchema()]] as const) {
    lines.push(`    ${name}:`, ...yamlLines(schema, 6));
  }
  lines.push(END_MARK);
  return lines.join("\n");
}

/** The OpenAPI text with its generated block replaced by what zod says today. */
export function withGeneratedSchemas(yamlText: string): string {
  const begin = yamlText.indexOf(BEGIN_MARK);
  const end = yamlText.indexOf(END_MARK);
  if (begin < 0 || end < begin) throw new Error("api/openapi.yaml has no generated-schema markers under components/schemas");
  return yamlText.slice(0, begin) + generatedBlock() + yamlText.slice(end + END_MARK.length);
}

// A small YAML writer in the file's own style: a mapping of scalars that
// fits on a line is written `{ a: b }`, everything else as blocks.

const PLAIN = /^[A-Za-z][A-Za-z0-9_./-]*$/;
const RESERVED = /^(true|false|null|yes|no|on|off|y|n|~)$/i;

function scalar(v: unknown): string {
  if (typeof v === "string") return PLAIN.test(v) && !RESERVED.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

function key(k: string): string {
  return PLAIN.test(k) || /^\$[a-z]+$/.test(k) ? k : JSON.stringify(k);
}

function isScalar(v: unknown): boolean {
  return v === null || typeof v !== "object";
}

function flow(v: unknown): string | undefined {
  if (isScalar(v)) return scalar(v);
  if (Array.isArray(v)) return v.every(isScalar) ? `[${v.map(scalar).join(", ")}]` : undefined;
  const entries = Object.entries(v as Json);
  if (entries.length === 0) return "{}";
  if (!entries.every(([, x]) => isScalar(x) || (Array.isArray(x) && x.every(isScalar)) || (typeof x === "object" && x !== null && Object.keys(x).length === 0))) return undefined;
  return `{ ${entries.map(([k, x]) => `${key(k)}: ${flow(x)}`).join(", ")} }`;
}

function yamlLines(o: Json, indent: number): string[] {
  const pad = " ".repeat(indent);
  const lines: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    const f = flow(v);
    if (f !== undefined && `${pad}${key(k)}: ${f}`.length <= 110) lines.push(`${pad}${key(k)}: ${f}`);
    else if (Array.isArray(v)) for (const [i, x] of v.entries()) lines.push(...(i === 0 ? [`${pad}${key(k)}:`] : []), `${pad}  - ${flow(x) ?? JSON.stringify(x)}`);
    else lines.push(`${pad}${key(k)}:`, ...yamlLines(v as Json, indent + 2));
  }
  return lines;
}
