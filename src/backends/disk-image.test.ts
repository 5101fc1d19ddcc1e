import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runCommand } from "../host/command.js";
import { checkDiskNotShrunk, growDiskImage, makeDiskImage } from "./disk-image.js";

/** The filesystem's own size (dumpe2fs: block count x block size), not the file's. */
async function fsBytes(image: string): Promise<number> {
  const { stdout } = await runCommand("dumpe2fs", ["-h", image]);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(stdout)?.[1]);
  return field("Block count") * field("Block size");
}

test("a disk image grows (file and ext4) to a larger disk, stays at the same one, and refuses a smaller one", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-disk-"));
  try {
    const image = path.join(dir, "disk.img");
    const MiB = 1024 ** 2;
    assert.equal(await growDiskImage(image, 32 * MiB), false, "no image: nothing to grow");
    await makeDiskImage(image, 16 * MiB);
    assert.equal(await fsBytes(image), 16 * MiB);
    assert.equal(await growDiskImage(image, 16 * MiB), false);
    assert.equal(await growDiskImage(image, 40 * MiB), true);
    assert.deepEqual([fs.statSync(image).size, await fsBytes(image)], [40 * MiB, 40 * MiB]);
    // The grown filesystem is clean.
    assert.equal((await runCommand("e2fsck", ["-f", "-n", image], { allowFailure: true })).code, 0);
    assert.throws(() => checkDiskNotShrunk(image, 20 * MiB), { code: "conflict", message: /disk cannot shrink: its disk image is 41943040 bytes, the new spec asks for 20971520/ });
    await assert.rejects(growDiskImage(image, 20 * MiB), { code: "conflict" });
    assert.equal(fs.statSync(image).size, 40 * MiB, "a refused shrink leaves the image alone");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
