import type { ValidateFunction } from "ajv/dist/2020.js";
import { InvalidArgumentError } from "../core/errors.js";
import { checkName, pathParameterKind, type NameKind } from "../core/names.js";
import type { OpenApi, Operation, Parameter } from "./openapi.js";

type Json = Record<string, unknown>;

export interface CheckedParams {
  readonly params: Record<string, unknown>;
  readonly query: Record<string, unknown>;
}

/**
 * Path and query parameters checked against api/openapi.yaml, for both
 * transports: HTTP's come as strings (a repeated query parameter as a
 * list), /v1/connect's as JSON values; each is converted to the type its
 * schema declares (integer, boolean, list), then validated. A bad one is a
 * 400 naming the parameter, what was given and what it must be; an unknown
 * query parameter too (a misspelt `recursive` would otherwise be ignored).
 */
export class ParamChecker {
  private readonly checks = new Map<string, { op: Operation; path: ValidateFunction; query: ValidateFunction }>();

  /** Each operation's string path parameters and their name kind (core/names.ts). */
  private readonly names = new Map<string, [string, NameKind][]>();

  constructor(private readonly openapi: OpenApi) {
    for (const op of openapi.operations()) {
      this.checks.set(op.id, { op, path: this.compile(op, "path"), query: this.compile(op, "query") });
      const named: [string, NameKind][] = [];
      for (const p of op.parameters.filter((x) => x.in === "path" && (x.schema as { type?: string }).type === "string")) {
        const kind = pathParameterKind(op.path, p.name);
        if (!kind) throw new Error(`path parameter ${p.name} of ${op.id} has no name kind (core/names.ts pathParameterKind)`);
        named.push([p.name, kind]);
      }
      this.names.set(op.id, named);
    }
  }

  private compile(op: Operation, where: "path" | "query"): ValidateFunction {
    const ps = op.parameters.filter((p) => p.in === where);
    return this.openapi.compile({
      type: "object",
      properties: Object.fromEntries(ps.map((p) => [p.name, p.schema])),
      required: ps.filter((p) => p.required).map((p) => p.name),
      additionalProperties: false,
    });
  }

  check(operationId: string, path: Readonly<Record<string, unknown>>, query: Readonly<Record<string, unknown>>): CheckedParams {
    const c = this.checks.get(operationId);
    if (!c) throw new InvalidArgumentError(`unknown operation ${JSON.stringify(operationId)}`);
    const params = this.one(c.op, "path", c.path, path);
    // The one name type, whatever the document's pattern says.
    for (const [name, kind] of this.names.get(operationId) ?? []) checkName(kind, params[name], `path parameter "${name}"`);
    return { params, query: this.one(c.op, "query", c.query, query) };
  }

  private one(op: Operation, where: "path" | "query", v: ValidateFunction, given: Readonly<Record<string, unknown>>): Record<string, unknown> {
    const declared = new Map(op.parameters.filter((p) => p.in === where).map((p) => [p.name, p]));
    const out: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(given)) {
      if (value === undefined) continue;
      const p = declared.get(name);
      out[name] = p ? coerce(value, p.schema) : value;
    }
    if (v(out)) return out;
    const e = v.errors?.[0];
    const where_ = `${where} parameter`;
    if (!e) throw new InvalidArgumentError(`invalid ${where_}s`);
    if (e.keyword === "additionalProperties") {
      const name = String(e.params["additionalProperty"]);
      const takes = [...declared.keys()];
      throw new InvalidArgumentError(
        `unknown ${where_} ${JSON.stringify(name)}: ${op.id} takes ${takes.length ? takes.map((k) => JSON.stringify(k)).join(", ") : "none"}`,
      );
    }
    if (e.keyword === "required") {
      const p = declared.get(String(e.params["missingProperty"]));
      throw new InvalidArgumentError(`the ${where_} ${JSON.stringify(p?.name)} is required${about(p)}`);
    }
    const name = e.instancePath.split("/")[1] ?? "";
    const p = declared.get(name);
    throw new InvalidArgumentError(`${where_} ${JSON.stringify(name)} ${e.message ?? "is invalid"}, got ${JSON.stringify(out[name])}${about(p)}`);
  }
}

function about(p: Parameter | undefined): string {
  const d = p?.description ?? (p?.schema["description"] as string | undefined);
  return d ? ` (${d.replace(/\.$/, "")})` : "";
}

/** A parameter as its schema's type: "12" → 12 for an integer, "true" → true for a boolean, a lone value → [value] for a list. */
function coerce(value: unknown, schema: Json): unknown {
  const type = schema["type"];
  if (type === "array") {
    const items = (schema["items"] ?? {}) as Json;
    return (Array.isArray(value) ? value : [value]).map((x) => coerce(x, items));
  }
  if (type === "integer" || type === "number") {
    return typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  }
  if (type === "boolean" && typeof value === "string") {
    // `?recursive` alone means true, as in most HTTP APIs.
    if (value === "true" || value === "1" || value === "") return true;
    if (value === "false" || value === "0") return false;
    return value;
  }
  if (type === "string" && (typeof value === "number" || typeof value === "boolean")) return String(value);
  return value;
}
