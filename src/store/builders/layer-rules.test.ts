import { test } from "node:test";
import assert from "node:assert/strict";
import { LayerRules, normalize } from "./layer-rules.js";
import type { TarEntry, TarEntryType } from "./tar-parser.js";

const entry = (name: string, type: TarEntryType = "file", linkname = ""): TarEntry => ({ name, type, linkname, size: 0, mode: 0o644, dataOffset: 0 });

function check(...entries: TarEntry[]): LayerRules {
  const r = new LayerRules();
  for (const e of entries) r.check(e);
  return r;
}

test("normalize drops . and empty parts and refuses escapes", () => {
  assert.equal(normalize("./a//b/./c/", "member"), "a/b/c");
  assert.equal(normalize("./", "member"), "");
  assert.throws(() => normalize("/etc/passwd", "member"), /absolute/);
  assert.throws(() => normalize("a/../../b", "member"), /"\.\."/);
});

test("members may not escape the layer", () => {
  assert.throws(() => check(entry("../etc/passwd")), /unsafe layer member "..\/etc\/passwd"/);
  assert.throws(() => check(entry("/abs")), /absolute/);
  assert.throws(() => check(entry("lib", "symlink", "/usr/lib"), entry("lib/evil")), /"lib" is a symlink in this layer/);
  assert.throws(() => check(entry("x", "symlink", "/etc"), entry("x", "directory")), /symlink/);
  assert.throws(() => check(entry("h", "hardlink", "/etc/shadow")), /absolute hard link target/);
  assert.throws(() => check(entry("h", "hardlink", "../outside")), /"\.\."/);
  assert.throws(() => check(entry("h", "hardlink", "not-here")), /not an earlier file/);
  assert.throws(() => check(entry("d", "directory"), entry("h", "hardlink", "d")), /not an earlier file/);
  assert.throws(() => check(entry("l", "symlink", "/etc/shadow"), entry("h", "hardlink", "l")), /symlink/);
  check(entry("./", "directory"), entry("a", "directory"), entry("a/f"), entry("a/h", "hardlink", "./a/f"), entry("rel", "symlink", "../../anything"));
});

test("whiteout markers become a plan", () => {
  const r = check(entry("etc", "directory"), entry("etc/.wh.doomed"), entry("var/.wh..wh..opq"), entry(".wh.top"), entry("x/.wh..wh.plnk"));
  assert.deepEqual(r.plan(), {
    markers: ["etc/.wh.doomed", "var/.wh..wh..opq", ".wh.top", "x/.wh..wh.plnk"],
    whiteouts: ["etc/doomed", "top"],
    opaqueDirs: ["var"],
  });
  assert.throws(() => check(entry("a/.wh..")), /whiteout of nothing/);
  assert.throws(() => check(entry(".wh.dir", "directory")), /must not be a directory/);
});
