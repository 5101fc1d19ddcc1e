import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { batches } from "./ownership.js";

describe("ownership", () => {
  it("gives paths to a user in chowns whose argv fits an agent frame", () => {
    assert.deepEqual(batches([]), []);
    assert.deepEqual(batches(["/a", "/b"]), [["/a", "/b"]]);
    const long = Array.from({ length: 40 }, (_, i) => `/${String(i).padStart(4, "0")}${"x".repeat(4000)}`);
    const groups = batches(long);
    assert.ok(groups.length > 1);
    assert.deepEqual(groups.flat(), long);
    for (const g of groups) assert.ok(g.reduce((n, p) => n + p.length, 0) <= 32 * 1024);
  });
});
