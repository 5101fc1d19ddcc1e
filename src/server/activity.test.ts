import { test } from "node:test";
import assert from "node:assert/strict";
import { Activity } from "./activity.js";

test("lull resolves at once when nothing happened", async () => {
  const a = new Activity();
  const t0 = performance.now();
  await a.lull(50, 1000);
  assert.ok(performance.now() - t0 < 40);
});

test("lull waits for quiet after a request, and gives up waiting at its bound", async () => {
  const a = new Activity();
  a.touch();
  const t0 = performance.now();
  await a.lull(30, 1000);
  assert.ok(performance.now() - t0 >= 29);
  // Requests keep coming: the wait ends at maxWaitMs, not never.
  a.touch();
  const busy = setInterval(() => a.touch(), 5);
  const t1 = performance.now();
  await a.lull(30, 120);
  clearInterval(busy);
  const waited = performance.now() - t1;
  assert.ok(waited >= 119, `waited ${waited} ms`);
});
