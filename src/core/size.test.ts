import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSize, formatSize } from "./size.js";

test("parseSize", () => {
  assert.equal(parseSize(10), 10);
  assert.equal(parseSize("10"), 10);
  assert.equal(parseSize("1k"), 1024);
  assert.equal(parseSize("512M"), 512 * 1024 ** 2);
  assert.equal(parseSize("2GiB"), 2 * 1024 ** 3);
  assert.equal(parseSize("1.5g"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("-1"), undefined);
  assert.equal(parseSize("1x"), undefined);
  assert.equal(parseSize(1.5), undefined);
});

test("formatSize", () => {
  assert.equal(formatSize(512 * 1024 ** 2), "512MiB");
  assert.equal(formatSize(1536), "1.5KiB");
  assert.equal(formatSize(3), "3B");
});
