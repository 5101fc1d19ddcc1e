import { test } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { runCommand } from "../../host/command.js";
import { cpioNewc } from "./cpio.js";

test("cpio(1) unpacks what cpioNewc writes: files, modes, dirs, symlinks", async () => {
  const img = cpioNewc([
    { path: "/bin", type: "dir" },
    { path: "/bin/tool", type: "file", mode: 0o755, data: Buffer.from("#!/bin/sh\necho hi\n") },
    { path: "/odd", type: "file", data: Buffer.from("abc") },
    { path: "/bin/sh", type: "symlink", target: "tool" },
  ]);
  assert.deepEqual(cpioNewc([{ path: "/odd", type: "file", data: Buffer.from("abc") }]), cpioNewc([{ path: "/odd", type: "file", data: Buffer.from("abc") }]));
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-cpio-"));
  try {
    await fsp.writeFile(path.join(dir, "img.cpio"), gunzipSync(img));
    await fsp.mkdir(path.join(dir, "out"));
    await runCommand("sh", ["-c", "cd out && cpio -id --quiet < ../img.cpio"], { cwd: dir });
    const out = path.join(dir, "out");
    assert.equal(await fsp.readFile(path.join(out, "bin/tool"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.equal((await fsp.stat(path.join(out, "bin/tool"))).mode & 0o777, 0o755);
    assert.equal(await fsp.readFile(path.join(out, "odd"), "utf8"), "abc");
    assert.equal(await fsp.readlink(path.join(out, "bin/sh")), "tool");
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("cpioNewc refuses paths that climb out", () => {
  assert.throws(() => cpioNewc([{ path: "/a/../../etc", type: "dir" }]), /bad initramfs path/);
});
