import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv2020, type ValidateFunction, type ErrorObject } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import YAML from "yaml";
import { InvalidArgumentError, InvalidSpecError, type SpecIssue } from "../core/errors.js";

/** api/openapi.yaml: the source of truth for requests and responses. */
export const OPENAPI_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../api/openapi.yaml");

type Json = Record<string, unknown>;

export interface Operation {
  readonly id: string;
  readonly method: string;
  readonly path: string;
  readonly responses: Json;
  readonly requestBody?: Json;
  /** The content types its body may have (none: it takes no body). */
  readonly bodyTypes: readonly string[];
  readonly bodyRequired: boolean;
  /** Answered without an API key (`security: []`). */
  readonly public: boolean;
  /** Its path and query parameters, `$ref`s resolved (path-level ones first). */
  readonly parameters: readonly Parameter[];
}

export interface Parameter {
  readonly name: string;
  readonly in: "path" | "query" | "header" | "cookie";
  readonly required?: boolean;
  readonly description?: string;
  readonly schema: Json;
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/**
 * Validators compiled from the OpenAPI document (JSON Schema 2020-12, as
 * OpenAPI 3.1 uses). Request bodies are checked before a handler runs;
 * responses are checked too when the daemon runs with validateResponses
 * (the test suites do), so a handler that drifts from the spec fails loudly.
 */
export class OpenApi {
  readonly doc: Json;
  private readonly ajv: Ajv2020;
  private readonly ops = new Map<string, Operation>();
  private readonly cache = new Map<string, ValidateFunction>();

  constructor(file = OPENAPI_PATH) {
    this.doc = YAML.parse(fs.readFileSync(file, "utf8")) as Json;
    // verbose: an error carries its schema, so a message can name the fields that would have been right.
    this.ajv = new Ajv2020({ strict: false, allErrors: true, verbose: true });
    addFormats(this.ajv);
    this.ajv.addFormat("binary", true);
    this.ajv.addSchema(this.doc, "openapi");
    for (const [p, item] of Object.entries(this.doc["paths"] as Record<string, Json>)) {
      const shared = ((item["parameters"] ?? []) as Json[]).map((x) => this.resolve(x) as unknown as Parameter);
      for (const [method, op] of Object.entries(item)) {
        const o = op as Json;
        if (typeof o !== "object" || !o || typeof o["operationId"] !== "string") continue;
        const body = o["requestBody"] ? this.resolve(o["requestBody"] as Json) : undefined;
        const own = ((o["parameters"] ?? []) as Json[]).map((x) => this.resolve(x) as unknown as Parameter);
        this.ops.set(o["operationId"], {
          id: o["operationId"],
          method,
          path: p,
          responses: (o["responses"] ?? {}) as Json,
          ...(body ? { requestBody: body } : {}),
          bodyTypes: Object.keys((body?.["content"] ?? {}) as Json),
          bodyRequired: body?.["required"] === true,
          public: Array.isArray(o["security"]) && (o["security"] as unknown[]).length === 0,
          parameters: [...shared.filter((x) => !own.some((y) => y.name === x.name && y.in === x.in)), ...own],
        });
      }
    }
  }

  /**
   * Compiles every request body validator now: a validator compiled on
   * first use costs its first request ~10 ms here (ajv generates code).
   */
  precompileRequestBodies(): void {
    for (const id of this.ops.keys()) this.checkRequestBody(id, undefined);
  }

  operation(id: string): Operation {
    const op = this.ops.get(id);
    if (!op) throw new Error(`no operation ${id} in the OpenAPI document`);
    return op;
  }

  operationIds(): string[] {
    return [...this.ops.keys()];
  }

  operations(): Operation[] {
    return [...this.ops.values()];
  }

  /** A validator of a schema built from the document's pieces (its `$ref`s point into the document). */
  compile(schema: Json): ValidateFunction {
    return this.ajv.compile(JSON.parse(JSON.stringify(schema).replaceAll('"$ref":"#/', '"$ref":"openapi#/')) as Json);
  }

  private validator(pointer: string): ValidateFunction {
    let v = this.cache.get(pointer);
    if (!v) {
      v = this.ajv.compile({ $ref: `openapi${pointer}` });
      this.cache.set(pointer, v);
    }
    return v;
  }

  /** Errors of a JSON request body against the operation's schema, each with its field's dotted path. */
  checkRequestBody(operationId: string, body: unknown): SpecIssue[] {
    const op = this.operation(operationId);
    if (!op.requestBody) return [];
    const content = (op.requestBody["content"] ?? {}) as Json;
    if (!content["application/json"]) return [{ path: "", message: `takes ${Object.keys(content).join(" or ") || "no body"}, not application/json` }];
    const pointer = `#/paths/${escapePointer(op.path)}/${op.method}/requestBody/content/application~1json/schema`;
    return issues(this.validator(pointer), body);
  }

  /** Errors of a value against one of the document's schemas (components/schemas/NAME). */
  checkSchema(name: string, value: unknown): SpecIssue[] {
    return issues(this.validator(`#/components/schemas/${escapePointer(name)}`), value);
  }

  /**
   * The error a request with this JSON body gets (both transports answer
   * with it), each problem by its field's path; undefined when it is
   * valid. A sandbox spec is not checked here: parseSpec (zod) does, for
   * the API and the library alike, so a mistake gets one message.
   */
  requestBodyError(operationId: string, body: unknown): InvalidArgumentError | undefined {
    if (operationId === "createSandbox") return undefined;
    const problems = this.checkRequestBody(operationId, body);
    if (problems.length === 0) return undefined;
    return new InvalidArgumentError(`invalid request body: ${problems.map((p) => `${p.path || "(body)"}: ${p.message}`).join("; ")}`);
  }

  /**
   * An NDJSON event as it may be sent: itself, or in its place an `error`
   * event when it does not match the operation's spec (only checked with
   * `check`, as every test daemon does).
   */
  checkedEvent(operationId: string, event: unknown, check: boolean): unknown {
    const problems = check ? this.checkResponse(operationId, 200, "application/x-ndjson", event) : [];
    return problems.length ? { type: "error", error: { code: "internal", message: `response did not match the spec: ${problems.join("; ")}` } } : event;
  }

  /**
   * Errors of a response against the spec: the status must be one the
   * operation declares (or `default`), and a JSON body must match its schema.
   */
  checkResponse(operationId: string, status: number, contentType: string, body: unknown): string[] {
    const op = this.operation(operationId);
    const key = op.responses[String(status)] ? String(status) : op.responses["default"] ? "default" : undefined;
    if (!key) return [`status ${status} is not declared for ${operationId}`];
    if (key === "default" && status < 400) return [`status ${status} is only covered by "default" (errors) for ${operationId}`];
    const base = `#/paths/${escapePointer(op.path)}/${op.method}/responses/${key}`;
    const resolved = this.resolve(op.responses[key] as Json);
    const content = resolved["content"] as Json | undefined;
    if (!content) return body === undefined || body === "" ? [] : [`${operationId} ${status} declares no body`];
    const type = contentType.split(";")[0]!.trim();
    if (!content[type]) return [`${operationId} ${status} does not declare ${type}`];
    if (type !== "application/json" && type !== "application/x-ndjson") return [];
    const pointer = resolved === op.responses[key] ? `${base}/content/${escapePointer(type)}/schema` : `${refOf(op.responses[key] as Json)}/content/${escapePointer(type)}/schema`;
    return issues(this.validator(pointer), body).map((i) => `${i.path || "(body)"} ${i.message}`);
  }

  resolve(obj: Json): Json {
    const ref = obj["$ref"];
    if (typeof ref !== "string") return obj;
    let cur: unknown = this.doc;
    for (const part of ref.replace(/^#\//, "").split("/")) cur = (cur as Json)[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    return cur as Json;
  }
}

function refOf(obj: Json): string {
  return String(obj["$ref"]);
}

function escapePointer(s: string): string {
  return s.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** ajv's errors as {path: "resources.memory", message}; "" is the whole body. */
function issues(v: ValidateFunction, value: unknown): SpecIssue[] {
  if (v(value)) return [];
  return (v.errors ?? []).map((e: ErrorObject) => ({ path: e.instancePath.replace(/^\//, "").replaceAll("/", "."), message: messageOf(e) }));
}

function messageOf(e: ErrorObject): string {
  if (e.keyword === "required") return `${JSON.stringify(String(e.params["missingProperty"]))} is required`;
  if (e.keyword !== "additionalProperties") return e.message ?? "is invalid";
  // {"command": ...} on exec: name the field that was meant, and what the object takes.
  const unknown = String(e.params["additionalProperty"]);
  const parent = (e.parentSchema ?? {}) as Json;
  const known = Object.keys((parent["properties"] ?? {}) as Json);
  const near = known.filter((k) => closeTo(unknown, k));
  const about = typeof parent["description"] === "string" ? ` (${parent["description"].replace(/\.$/, "")})` : "";
  return `unknown field ${JSON.stringify(unknown)}${near.length ? `: did you mean ${near.map((k) => JSON.stringify(k)).join(" or ")}?` : ""}${about}; it takes ${known.map((k) => JSON.stringify(k)).join(", ")}`;
}

/** A likely slip: one name is the other with letters left out (command → cmd), or one edit away (args → argv). */
export function closeTo(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const sub = (s: string, t: string) => {
    let i = 0;
    for (const c of t) if (c === s[i]) i++;
    return i === s.length;
  };
  if (x.length >= 2 && y.length >= 2 && (sub(x, y) || sub(y, x))) return true;
  if (Math.abs(x.length - y.length) > 1) return false;
  let edits = 0;
  for (let i = 0, j = 0; i < x.length || j < y.length; i++, j++) {
    if (x[i] === y[j]) continue;
    if (++edits > 1) return false;
    if (x.length > y.length) j--;
    else if (y.length > x.length) i--;
  }
  return true;
}
