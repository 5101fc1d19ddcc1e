// The one name type: every string path parameter of api/openapi.yaml has a
// kind, and the document's pattern is the zod one, so the API, the SDK's
// types and the library refuse the same names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkName, NAME_KINDS, pathParameterKind } from "../core/names.js";
import { OpenApi } from "./openapi.js";

test("every string path parameter has a name kind whose pattern the document repeats", () => {
  const api = new OpenApi();
  let seen = 0;
  for (const op of api.operations()) {
    for (const p of op.parameters.filter((x) => x.in === "path")) {
      const schema = p.schema as { type?: string; pattern?: string };
      if (schema.type !== "string") continue;
      const kind = pathParameterKind(op.path, p.name);
      assert.ok(kind, `${op.id} ${p.name}`);
      assert.equal(schema.pattern, NAME_KINDS[kind].pattern.source, `${op.id} ${p.name}`);
      seen++;
    }
  }
  assert.ok(seen >= 20, `${seen} path parameters`);
});

test("no kind admits a separator, NUL, a dot first or traversal", () => {
  for (const kind of Object.keys(NAME_KINDS) as (keyof typeof NAME_KINDS)[]) {
    for (const bad of ["..", "../x", "a/b", "a\\b", ".hidden", "x\0", "", "/etc/passwd", "a/../../b", "%2e%2e", "é"]) {
      assert.throws(() => checkName(kind, bad), { code: "invalid_argument" }, `${kind} ${JSON.stringify(bad)}`);
    }
  }
  assert.equal(checkName("template", "debian-nix"), "debian-nix");
  assert.equal(checkName("sandbox", "0123456789abcdef"), "0123456789abcdef");
});
