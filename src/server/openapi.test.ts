import { test } from "node:test";
import assert from "node:assert/strict";
import { OpenApi } from "./openapi.js";

const api = new OpenApi();

test("request bodies are checked against the spec, each problem by its field path", () => {
  assert.deepEqual(api.checkRequestBody("createSandbox", { template: "busybox" }), []);
  assert.deepEqual(api.checkRequestBody("createSandbox", { template: "busybox", extra: 1, resources: { pids: "x" } }), [
    { path: "", message: "must NOT have additional properties: extra" },
    { path: "resources.pids", message: "must be integer" },
  ]);
  assert.deepEqual(api.checkRequestBody("signalProcess", { signal: 0 }), [{ path: "signal", message: "must be >= 1" }]);
  // An upload sent as JSON is refused, not handed to a handler that streams bytes.
  assert.deepEqual(api.checkRequestBody("writeFile", { data: "x" }), [{ path: "", message: "takes application/octet-stream, not application/json" }]);
});

test("responses must use a declared status and match its schema", () => {
  assert.deepEqual(api.checkResponse("health", 200, "application/json", { status: "ok", version: "1" }), []);
  assert.match(api.checkResponse("health", 200, "application/json", { status: "bad" }).join(";"), /status|version/);
  assert.match(api.checkResponse("health", 201, "application/json", {}).join(";"), /not declared/);
  assert.deepEqual(api.checkResponse("getSandbox", 404, "application/json", { error: { code: "sandbox_not_found", message: "x" } }), []);
  assert.match(api.checkResponse("getSandbox", 200, "text/plain", "x").join(";"), /does not declare text\/plain/);
});
