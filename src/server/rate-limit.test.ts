import { test } from "node:test";
import assert from "node:assert/strict";
import { CreateLimiter } from "./rate-limit.js";

test("a tenant may burst, then waits for the rate; tenants are apart", () => {
  const l = new CreateLimiter({ perSecond: 2, burst: 3 });
  for (let i = 0; i < 3; i++) l.take("a", 1000);
  assert.throws(() => l.take("a", 1000), { code: "rate_limited", status: 429 });
  l.take("b", 1000);
  l.take("a", 1500); // half a second: one more token
  assert.throws(() => l.take("a", 1500), { code: "rate_limited" });
  new CreateLimiter(undefined).take("a"); // no limit
});
