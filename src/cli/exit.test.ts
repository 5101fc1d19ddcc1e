import { test } from "node:test";
import assert from "node:assert/strict";
import { ForbiddenError as CoreForbidden, NotFoundError as CoreNotFound, SandboxOperationError } from "../core/errors.js";
import { ForbiddenError, SandboxError } from "../../sdk/src/errors.js";
import { exitCodeOf, messageOf } from "./exit.js";

test("a refused key (403 forbidden) is one line saying so, exit 1, from the SDK or the runtime", () => {
  const msg = 'tenant "dev" may not list tenants: it is shared by every tenant (corral daemon --admin-tenant NAME allows it)';
  for (const e of [new ForbiddenError("forbidden", msg, 403), new CoreForbidden(msg)]) {
    assert.equal(messageOf(e), `forbidden: ${msg}`);
    assert.equal(exitCodeOf(e), 1);
  }
  // A 403 that is not a refused key (EACCES in the sandbox) keeps its own words.
  const eacces = new SandboxOperationError("EACCES", "permission denied: /etc/shadow");
  assert.deepEqual([messageOf(eacces), exitCodeOf(eacces)], ["permission denied: /etc/shadow", 1]);
});

test("exit codes: 1 for the request's fault, 125 for corral's or the host's", () => {
  assert.equal(exitCodeOf(new CoreNotFound("sandbox", "x")), 1);
  assert.equal(exitCodeOf(new SandboxError("connection_failed", "request to corral failed: ECONNREFUSED")), 125);
  assert.equal(exitCodeOf(new Error("unexpected")), 125);
});
