import { test } from "node:test";
import assert from "node:assert/strict";
import { percentile } from "./stats.js";

test("percentile uses nearest rank", () => {
  const s = [5, 1, 4, 2, 3];
  assert.equal(percentile(s, 50), 3);
  assert.equal(percentile(s, 95), 5);
  assert.equal(percentile(s, 0), 1);
  assert.ok(Number.isNaN(percentile([], 50)));
});
