import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { isStaticElf } from "./busybox.js";

test("isStaticElf tells static from dynamic executables", () => {
  assert.equal(isStaticElf(fs.readFileSync(process.execPath)), false);
  assert.equal(isStaticElf(Buffer.from("#!/bin/sh\n")), false);
  const busybox = fs.existsSync("/bin/busybox") ? fs.readFileSync("/bin/busybox") : undefined;
  if (busybox) assert.equal(isStaticElf(busybox), true);
});
