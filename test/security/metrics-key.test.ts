// Threat: an unauthenticated reader learning every tenant's name and
// activity (issue 18: GET /metrics needed no key). It takes an admin
// tenant's key unless the operator opts out (corral daemon --public-metrics).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";

describe("GET /metrics", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("metrics-key");
  });
  after(async () => t.close());

  it("needs an admin tenant's key by default", async () => {
    const d = await testDaemon(t, { adminTenants: ["ops"] });
    try {
      const admin = t.s.tenants.createKey("ops").key;
      const tenant = t.s.tenants.createKey("secret-customer").key;
      const anon = await request(d.url, "GET", "/metrics");
      assert.equal(anon.status, 401);
      assert.doesNotMatch(anon.text, /secret-customer/);
      const other = await request(d.url, "GET", "/metrics", { key: tenant });
      assert.equal(other.status, 403);
      assert.equal(other.json<{ error: { code: string } }>().error.code, "forbidden", other.text);
      const ok = await request(d.url, "GET", "/metrics", { key: admin });
      assert.equal(ok.status, 200);
      assert.match(ok.text, /^# TYPE corral_/m);
    } finally {
      await d.close();
    }
  });

  it("is open with the operator's opt-out", async () => {
    const d = await testDaemon(t, { publicMetrics: true });
    try {
      const r = await request(d.url, "GET", "/metrics");
      assert.equal(r.status, 200);
    } finally {
      await d.close();
    }
  });
});
