import { test } from "node:test";
import assert from "node:assert/strict";
import { age, keyValues, table } from "./format.js";

test("table aligns columns", () => {
  assert.equal(table(["A", "BB"], [["xxx", "y"], ["z", "w"]]), "A     BB\nxxx   y\nz     w");
});

test("age", () => {
  const now = Date.parse("2026-01-01T01:00:00Z");
  assert.equal(age("2026-01-01T00:59:30Z", now), "30s");
  assert.equal(age("2026-01-01T00:58:45Z", now), "1m15s");
  assert.equal(age("2025-12-30T23:00:00Z", now), "1d2h");
});

test("keyValues", () => {
  assert.deepEqual(keyValues(["A=1", "B=x=y"], "env"), { A: "1", B: "x=y" });
  assert.throws(() => keyValues(["=1"], "env"), /KEY=VALUE/);
});
