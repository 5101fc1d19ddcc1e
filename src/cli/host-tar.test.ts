// The host's tar as cp -r runs it: a round trip, and what it refuses of an
// archive a sandbox made (test/functional/cli-cp.test.ts sends one through
// a real sandbox; here each refusal is checked alone, without one).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { tarArchive } from "../../test/helpers/tar-writer.js";
import { tarCreate, tarExtract } from "./host-tar.js";

describe("host tar (cp -r's host side)", () => {
  let root: string;
  before(async () => (root = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-host-tar-"))));
  after(async () => fsp.rm(root, { recursive: true, force: true }));

  it("archives a tree with its symlinks as symlinks and extracts it, one component stripped", async () => {
    const src = path.join(root, "src");
    await fsp.mkdir(path.join(src, "d"), { recursive: true });
    await fsp.writeFile(path.join(src, "d/f"), "f\n");
    await fsp.symlink("/etc/passwd", path.join(src, "out"));
    const dst = path.join(root, "dst");
    await fsp.mkdir(dst);
    const made = tarCreate(root, ["src"]);
    await Promise.all([tarExtract(dst, made.stream, 1), made.done]);
    assert.equal(await fsp.readFile(path.join(dst, "d/f"), "utf8"), "f\n");
    assert.equal(await fsp.readlink(path.join(dst, "out")), "/etc/passwd");
  });

  it("keeps a small tree's archive for a reader that comes after tar has exited", async () => {
    // Node drops an unread child stdout at the child's exit: cp -r of a
    // small tree sent an empty archive (the sandbox side starts reading
    // only once its tar runs).
    const src = path.join(root, "small");
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, "f"), "small\n");
    const made = tarCreate(src, ["."]);
    await made.done;
    let bytes = 0;
    for await (const b of made.stream) bytes += (b as Buffer).length;
    assert.ok(bytes >= 1024, `${bytes} bytes`);
  });

  it("writes nothing through a symlink the archive made, nor above or outside its directory", async () => {
    const outside = path.join(root, "outside");
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(root, "secret"), "secret\n");
    const dst = path.join(root, "hostile");
    await fsp.mkdir(dst);
    const archive = tarArchive([
      { name: "x", type: "symlink", pax: { linkpath: outside } },
      { name: "x/evil", data: "evil" },
      { name: "y", type: "symlink", linkname: "../outside" },
      { name: "y/evil", data: "evil" },
      { name: "../evil", data: "evil" },
      { name: "h", type: "hardlink", pax: { linkpath: path.join(root, "secret") } },
      { name: "suid", data: "#!/bin/sh\n", mode: 0o4755 },
    ]);
    await assert.rejects(tarExtract(dst, Readable.from([archive]), 0), /host tar could not extract: /);
    assert.deepEqual(await fsp.readdir(outside), []);
    assert.equal(fs.existsSync(path.join(root, "evil")), false);
    assert.equal((await fsp.stat(path.join(root, "secret"))).nlink, 1, "no hard link to a host file");
    // No setuid bit from a sandbox.
    assert.equal(((await fsp.stat(path.join(dst, "suid"))).mode & 0o7777).toString(8), "755");
  });

  it("makes no device node, even as root", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("only root could make one");
    const dst = path.join(root, "dev");
    await fsp.mkdir(dst);
    // A block device 8:0 (the host's first disk), as a hostile sandbox can send it.
    const dev = tarArchive([{ name: "sda", typeflag: "4", mode: 0o666 }]);
    dev.write("0000010\0", 329); // devmajor 8
    dev.write("0000000\0", 337);
    let sum = 0;
    dev.fill(0x20, 148, 156);
    for (const b of dev.subarray(0, 512)) sum += b;
    dev.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    await assert.rejects(tarExtract(dst, Readable.from([dev]), 0), /mknod/i);
    assert.deepEqual(await fsp.readdir(dst), []);
  });
});
