import { test } from "node:test";
import assert from "node:assert/strict";
import type { BuildProgress } from "../builders/builder.js";
import { isStorePath, nixProgressParser, parseStorePaths, profileLinks, storeBaseName } from "./nix-paths.js";

const A = "/nix/store/qp4i8lpqnq8hxylfjfalgl2xwfmazdg8-hello";
const B = "/nix/store/r9zgkzc5zab416qddj283jlsvp18ydzr-busybox-static";

test("isStorePath takes only entries directly in /nix/store with a Nix hash", () => {
  assert.ok(isStorePath(A));
  assert.ok(isStorePath("/nix/store/93hswik0brc6ppfajxk7zb4h1hkh5cb6-busybox-1.35.0+x_y?=z"));
  for (const bad of [
    "/nix/store",
    "/nix/store/",
    `${A}/bin/hello`, // below a store path
    "/nix/store/qp4i8lpqnq8hxylfjfalgl2xwfmazdg8", // no name
    "/nix/store/qp4i8lpqnq8hxylfjfalgl2xwfmazdge-x", // 'e' is not in Nix's base-32
    "/nix/store/short-hello",
    "/tmp/store/qp4i8lpqnq8hxylfjfalgl2xwfmazdg8-hello",
    "/nix/store/qp4i8lpqnq8hxylfjfalgl2xwfmazdg8-../../etc",
    `${A}\n`,
  ]) {
    assert.equal(isStorePath(bad), false, bad);
  }
});

test("parseStorePaths keeps order, drops repeats and blank lines, refuses anything else", () => {
  assert.deepEqual(parseStorePaths(`${B}\n${A}\n\n${B}\n`, "x"), [B, A]);
  assert.deepEqual(parseStorePaths("", "x"), []);
  assert.throws(() => parseStorePaths(`${A}\nwarning: something\n`, "nix-build"), /nix-build printed "warning: something"/);
});

test("storeBaseName is the entry in /nix/store", () => {
  assert.equal(storeBaseName(A), "qp4i8lpqnq8hxylfjfalgl2xwfmazdg8-hello");
});

test("nixProgressParser counts derivations from nix-build's plan", () => {
  const seen: BuildProgress[] = [];
  const parse = nixProgressParser((p) => seen.push(p), 0, 100);
  parse("these 2 derivations will be built:");
  parse("  /nix/store/d26nca77qd31f1cb4a7y19p3z2hpjqvl-hello.drv");
  parse("building '/nix/store/d26nca77qd31f1cb4a7y19p3z2hpjqvl-hello.drv'...");
  parse("some builder output");
  parse("building '/nix/store/s8x899wy2qhysi9lfbsg8s62ifdhakh3-greeter.drv'...");
  assert.deepEqual(seen, [
    { phase: "plan", message: "2 derivation(s) to build", percent: 0 },
    { phase: "build", message: "building hello", percent: 0 },
    { phase: "build", message: "building greeter", percent: 50 },
  ]);
  const one: BuildProgress[] = [];
  const p1 = nixProgressParser((p) => one.push(p));
  p1("this derivation will be built:");
  assert.deepEqual(one, [{ phase: "plan", message: "1 derivation(s) to build", percent: 5 }]);
});

test("profileLinks: the first output with a name keeps it; odd names are skipped", () => {
  const links = profileLinks([
    { output: A, entries: ["hello", "sh"] },
    { output: B, entries: ["sh", "busybox", ".."] },
  ]);
  assert.deepEqual([...links], [
    ["hello", `${A}/bin/hello`],
    ["sh", `${A}/bin/sh`],
    ["busybox", `${B}/bin/busybox`],
  ]);
});
