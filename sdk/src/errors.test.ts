import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AuthError,
  ConflictError,
  CorralSdkError,
  errorFor,
  errorFromResponse,
  ForbiddenError,
  InvalidArgumentError,
  NotFoundError,
  QuotaError,
  SandboxError,
  TimeoutError,
} from "./errors.js";

describe("errorFor", () => {
  it("maps each HTTP status to its class", () => {
    const cases: [number, new (...a: never[]) => CorralSdkError][] = [
      [400, InvalidArgumentError],
      [413, InvalidArgumentError],
      [415, InvalidArgumentError],
      [422, InvalidArgumentError],
      [401, AuthError],
      [404, NotFoundError],
      [408, TimeoutError],
      [504, TimeoutError],
      [409, ConflictError],
      [429, QuotaError],
      [403, ForbiddenError],
      [500, SandboxError],
      [503, SandboxError],
      [507, SandboxError],
    ];
    for (const [status, cls] of cases) {
      const e = errorFor({ status, code: "c", message: "m" });
      assert.ok(e instanceof cls, `${status} -> ${e.name}`);
      assert.ok(e instanceof CorralSdkError);
      assert.equal(e.name, cls.name);
      assert.equal(e.status, status);
      assert.equal(e.code, "c");
      assert.equal(e.message, "m");
    }
  });

  it("maps by code when there is no status (errors inside a stream)", () => {
    assert.ok(errorFor({ status: 0, code: "sandbox_not_found", message: "" }) instanceof NotFoundError);
    assert.ok(errorFor({ status: 0, code: "unauthorized", message: "" }) instanceof AuthError);
    assert.ok(errorFor({ status: 0, code: "quota_exceeded", message: "" }) instanceof QuotaError);
    assert.ok(errorFor({ status: 0, code: "invalid_spec", message: "" }) instanceof InvalidArgumentError);
    assert.ok(errorFor({ status: 0, code: "timeout", message: "" }) instanceof TimeoutError);
    assert.ok(errorFor({ status: 0, code: "backend_failed", message: "" }) instanceof SandboxError);
  });

  it("keeps quota details and spec issues, naming each field in the message", () => {
    const q = errorFromResponse(
      429,
      "Too Many Requests",
      JSON.stringify({ error: { code: "quota_exceeded", message: "over", over: { quota: "maxSandboxes", limit: 1, requested: 2 } } }),
    );
    assert.ok(q instanceof QuotaError);
    assert.deepEqual(q.over, { quota: "maxSandboxes", limit: 1, requested: 2 });

    const i = errorFromResponse(
      400,
      "Bad Request",
      JSON.stringify({ error: { code: "invalid_spec", message: "invalid sandbox spec", issues: [{ path: "resources.memory", message: "not a size" }] } }),
    );
    assert.ok(i instanceof InvalidArgumentError);
    assert.equal(i.code, "invalid_spec");
    assert.match(i.message, /resources\.memory: not a size/);
    assert.deepEqual(i.issues, [{ path: "resources.memory", message: "not a size" }]);

    const named = errorFor({ status: 400, code: "invalid_spec", message: "resources.memory: bad", issues: [{ path: "resources.memory", message: "bad" }] });
    assert.equal(named.message, "resources.memory: bad");
  });

  it("copes with a body that is not corral's error shape", () => {
    const e = errorFromResponse(502, "Bad Gateway", "<html>upstream down</html>");
    assert.ok(e instanceof SandboxError);
    assert.equal(e.code, "http_502");
    assert.match(e.message, /HTTP 502 Bad Gateway: <html>upstream down/);
    const n = errorFromResponse(404, "Not Found", "");
    assert.ok(n instanceof NotFoundError);
    assert.equal(n.message, "HTTP 404 Not Found");
  });
});
