import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { TarParser, type TarEntry } from "./tar-parser.js";
import { tarArchive } from "../../../test/helpers/tar-writer.js";

function parse(buf: Buffer, chunk = buf.length): TarEntry[] {
  const out: TarEntry[] = [];
  const p = new TarParser((e) => out.push(e));
  for (let i = 0; i < buf.length; i += chunk) p.push(buf.subarray(i, i + chunk));
  p.end();
  return out;
}

test("reads what GNU tar writes, in every format, however the bytes are chunked", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tar-parser-"));
  try {
    const long = `${"d".repeat(80)}/${"e".repeat(90)}`;
    fs.mkdirSync(path.join(dir, "src", long), { recursive: true });
    fs.writeFileSync(path.join(dir, "src", long, "f"), "x".repeat(1000));
    fs.symlinkSync(`../${"t".repeat(120)}`, path.join(dir, "src", "link"));
    fs.linkSync(path.join(dir, "src", long, "f"), path.join(dir, "src", "hard"));
    for (const format of ["gnu", "pax", "ustar"]) {
      const file = path.join(dir, `${format}.tar`);
      const members = format === "ustar" ? ["src/hard", `src/${"d".repeat(80)}`] : ["src"];
      execFileSync("tar", ["-cf", file, `--format=${format}`, "-C", dir, ...members], { stdio: "pipe" });
      const buf = fs.readFileSync(file);
      const want = execFileSync("tar", ["-tf", file]).toString().trim().split("\n").map((n) => n.replace(/\/$/, ""));
      for (const chunk of [buf.length, 7, 512, 1]) {
        const got = parse(buf, chunk);
        assert.deepEqual(got.map((e) => e.name.replace(/\/$/, "")), want, `${format} in chunks of ${chunk}`);
      }
      const entries = parse(buf);
      const f = entries.find((e) => e.name.endsWith("/f") || e.name === "src/hard");
      assert.ok(f && (f.type === "file" ? f.size === 1000 : f.type === "hardlink"), format);
      if (f?.type === "file") assert.equal(buf.subarray(f.dataOffset, f.dataOffset + 3).toString(), "xxx");
      if (format !== "ustar") assert.equal(entries.find((e) => e.type === "symlink")?.linkname, `../${"t".repeat(120)}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a truncated archive, a corrupt header and a missing end marker are errors", () => {
  const buf = tarArchive([{ name: "a", data: "hello" }, { name: "b", data: "x".repeat(2000) }]);
  assert.throws(() => parse(buf.subarray(0, 1500)), /truncated/);
  assert.throws(() => parse(tarArchive([{ name: "a", data: "hi" }], { end: false })), /truncated/);
  const corrupt = Buffer.from(buf);
  corrupt[3] = 0x41;
  assert.throws(() => parse(corrupt), /checksum/);
  assert.throws(() => parse(Buffer.alloc(1024, 0x41)), /not a tar header/);
  assert.equal(parse(buf).length, 2);
});

test("refuses members GNU tar could read differently", () => {
  assert.throws(() => parse(tarArchive([{ name: "s", typeflag: "S", data: "x" }])), /unsupported tar entry type "S"/);
  assert.throws(() => parse(tarArchive([{ name: "l", type: "symlink", linkname: "x", size: 512, data: "y".repeat(512) }])), /symlink member .* carries 512 bytes/);
  assert.throws(() => parse(tarArchive([{ name: "a", pax: { "GNU.sparse.name": "../evil" }, data: "x" }])), /sparse/);
  const named = parse(tarArchive([{ name: "short", pax: { path: "a/very/long/name", size: "3" }, data: "abc" }]));
  assert.deepEqual(named.map((e) => [e.name, e.size]), [["a/very/long/name", 3]]);
  assert.throws(() => parse(tarArchive([{ name: Buffer.from([0x61, 0xff]), data: "" }])), /not UTF-8/);
});
