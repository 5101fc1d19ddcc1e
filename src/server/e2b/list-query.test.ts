import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { SandboxInfo } from "../../runtime/sandboxes.js";
import { parseSpec } from "../../core/sandbox-spec.js";
import { page, parseListQuery } from "./list-query.js";

function sb(id: string, createdAt: string, labels: Record<string, string> = {}, status: SandboxInfo["status"] = "running", template = "e2b-base"): SandboxInfo {
  return { id, tenant: "t", name: `sb-${id}`, spec: parseSpec({ template, labels }), createdAt, expiresAt: null, state: "running", creatorPid: 1, status };
}

describe("GET /v2/sandboxes query", () => {
  it("reads the SDK's metadata (keys and values encoded inside one parameter) and comma-joined states", () => {
    // The SDK: URLSearchParams of encodeURIComponent'd pairs (so "a=b" in a value survives).
    const metadata = new URLSearchParams({ [encodeURIComponent("k 1")]: encodeURIComponent("v=1&x") }).toString();
    const q = parseListQuery({ metadata, state: "running,paused", limit: "2", order: "asc" });
    assert.deepEqual([...q.metadata], [["k 1", "v=1&x"]]);
    assert.deepEqual([...(q.states ?? [])], ["running", "paused"]);
    assert.equal(q.limit, 2);
  });

  it("refuses what it cannot read, naming it", () => {
    assert.throws(() => parseListQuery({ state: "gone" }), /state must be running or paused/);
    assert.throws(() => parseListQuery({ limit: "0" }), /limit must be/);
    assert.throws(() => parseListQuery({ limit: "101" }), /limit must be/);
    assert.throws(() => parseListQuery({ nextToken: "garbage" }), /nextToken/);
    assert.throws(() => parseListQuery({ startedAfter: "yesterday" }), /startedAfter/);
  });

  it("filters by metadata, state and template, newest first, in pages that follow one another", () => {
    const all = [
      sb("a", "2024-01-01T00:00:00.000Z", { app: "x" }),
      sb("b", "2024-01-02T00:00:00.000Z", { app: "x" }),
      sb("c", "2024-01-03T00:00:00.000Z", { app: "y" }),
      sb("d", "2024-01-04T00:00:00.000Z", { app: "x" }, "stopped"),
      sb("e", "2024-01-04T00:00:00.000Z", { app: "x" }, "running", "busybox"),
    ];
    const x = new URLSearchParams({ app: "x" }).toString();
    const first = page(all, parseListQuery({ metadata: x, limit: "2" }));
    assert.deepEqual(first.items.map((s) => s.id), ["e", "d"]);
    assert.ok(first.next);
    const second = page(all, parseListQuery({ metadata: x, limit: "2", nextToken: first.next }));
    assert.deepEqual(second.items.map((s) => s.id), ["b", "a"]);
    assert.equal(second.next, undefined);
    assert.deepEqual(page(all, parseListQuery({ state: "paused" })).items.map((s) => s.id), ["d"]);
    assert.deepEqual(page(all, parseListQuery({ template: "base", order: "asc" })).items.map((s) => s.id), ["a", "b", "c", "d"]);
    assert.deepEqual(page(all, parseListQuery({ startedAfter: "2024-01-03T00:00:00Z" })).items.map((s) => s.id), ["e", "d", "c"]);
  });
});
