import { test } from "node:test";
import assert from "node:assert/strict";
import { closeTo, OpenApi } from "./openapi.js";

const api = new OpenApi();

test("request bodies are checked against the spec, each problem by its field path", () => {
  assert.deepEqual(api.checkRequestBody("signalProcess", { signal: 0 }), [{ path: "signal", message: "must be >= 1" }]);
  assert.deepEqual(api.checkRequestBody("makeDir", {}), [{ path: "", message: '"path" is required' }]);
  // An upload sent as JSON is refused, not handed to a handler that streams bytes.
  assert.deepEqual(api.checkRequestBody("writeFile", { data: "x" }), [{ path: "", message: "takes application/octet-stream, not application/json" }]);
});

test("a sandbox spec is left to parseSpec, so the API and the library say the same", () => {
  assert.equal(api.requestBodyError("createSandbox", { template: "busybox", extra: 1 }), undefined);
  assert.match(String(api.requestBodyError("setSandboxTimeout", { timeoutSeconds: "x" })?.message), /timeoutSeconds: must be integer,null/);
});

test("an unknown field names the one meant, and what the body takes", () => {
  const e = api.requestBodyError("exec", { command: "ls" });
  assert.equal(e?.code, "invalid_argument");
  assert.match(e!.message, /unknown field "command": did you mean "cmd"\?/);
  assert.match(e!.message, /`argv` \(the program and its arguments\) or `cmd` \(a shell command line\)/);
  assert.match(api.requestBodyError("exec", { args: ["ls"] })!.message, /did you mean "argv"\?/);
  assert.ok(closeTo("command", "cmd") && closeTo("args", "argv") && closeTo("parent", "parents"));
  assert.ok(!closeTo("timeout", "env") && !closeTo("x", "cwd"));
});

test("responses must use a declared status and match its schema", () => {
  assert.deepEqual(api.checkResponse("health", 200, "application/json", { status: "ok", version: "1" }), []);
  assert.match(api.checkResponse("health", 200, "application/json", { status: "bad" }).join(";"), /status|version/);
  assert.match(api.checkResponse("health", 201, "application/json", {}).join(";"), /not declared/);
  assert.deepEqual(api.checkResponse("getSandbox", 404, "application/json", { error: { code: "sandbox_not_found", message: "x" } }), []);
  assert.match(api.checkResponse("getSandbox", 200, "text/plain", "x").join(";"), /does not declare text\/plain/);
});

test("each operation knows its body types and whether it needs a key", () => {
  const op = (id: string) => api.operations().find((o) => o.id === id)!;
  assert.deepEqual(op("writeFile").bodyTypes, ["application/octet-stream"]);
  assert.deepEqual(op("importTemplate").bodyTypes, ["application/x-tar", "application/gzip"]);
  assert.equal(op("writeStdin").bodyRequired, false);
  assert.equal(op("health").public, true);
  assert.equal(op("getSandbox").public, false);
  assert.deepEqual(op("readFile").parameters.map((p) => `${p.in}:${p.name}`), ["path:id", "query:path"]);
});
