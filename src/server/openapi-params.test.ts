import { test } from "node:test";
import assert from "node:assert/strict";
import { OpenApi } from "./openapi.js";
import { ParamChecker } from "./openapi-params.js";

const params = new ParamChecker(new OpenApi());

test("parameters come out typed as the spec declares them, from HTTP's strings or JSON values", () => {
  assert.deepEqual(params.check("waitProcess", { id: "sb-1", pid: "42" }, { timeoutMs: "500" }), { params: { id: "sb-1", pid: 42 }, query: { timeoutMs: 500 } });
  assert.deepEqual(params.check("waitProcess", { id: "sb-1", pid: 42 }, {}), { params: { id: "sb-1", pid: 42 }, query: {} });
  assert.deepEqual(params.check("removeFile", { id: "a" }, { path: "/x", recursive: "true" }).query, { path: "/x", recursive: true });
  assert.deepEqual(params.check("removeFile", { id: "a" }, { path: "/x", recursive: "" }).query, { path: "/x", recursive: true });
  assert.deepEqual(params.check("listSandboxes", {}, { label: "a=b" }).query, { label: ["a=b"] });
  assert.deepEqual(params.check("listSandboxes", {}, { label: ["a=b", "c=d"] }).query, { label: ["a=b", "c=d"] });
});

test("a bad parameter is a 400 naming it, what was given and what it must be", () => {
  const fails = (op: string, path: Record<string, unknown>, query: Record<string, unknown>, want: RegExp) =>
    assert.throws(() => params.check(op, path, query), (e: Error & { code?: string; status?: number }) => {
      assert.equal(e.code, "invalid_argument");
      assert.equal(e.status, 400);
      assert.match(e.message, want);
      return true;
    });
  fails("readFile", { id: "a" }, { path: "etc/passwd" }, /^query parameter "path" must match pattern "\^\/", got "etc\/passwd" \(Absolute path inside the sandbox\)$/);
  fails("readFile", { id: "a" }, {}, /^the query parameter "path" is required \(Absolute path inside the sandbox\)$/);
  fails("removeFile", { id: "a" }, { path: "/x", recursve: "true" }, /^unknown query parameter "recursve": removeFile takes "path", "recursive"$/);
  fails("waitProcess", { id: "a", pid: "0" }, {}, /^path parameter "pid" must be >= 1, got 0$/);
  fails("waitProcess", { id: "a", pid: "x" }, {}, /^path parameter "pid" must be integer, got "x"$/);
  fails("getSandbox", { id: "../etc" }, {}, /^path parameter "id" must match pattern/);
  fails("waitProcess", { id: "a", pid: "1" }, { timeoutMs: "600000" }, /^query parameter "timeoutMs" must be <= 300000, got 600000$/);
  fails("nosuch", {}, {}, /unknown operation "nosuch"/);
});
