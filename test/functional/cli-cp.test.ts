// `corral cp -r`: directory trees host → sandbox → host as tar streams
// (the sandbox's own tar through the agent, the host's GNU tar), through a
// daemon and without one, on a container and on a microVM (QEMU, TCG
// here); docker cp's rule for the destination; a hostile archive sent by
// the sandbox; the API's error codes. Leaks are scanned by each state's close.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { corralCli, corralRemote, type CliResult } from "../helpers/cli.js";
import { testDaemon } from "../helpers/daemon.js";
import { freshState, type TestState } from "../helpers/state.js";
import { tarArchive } from "../helpers/tar-writer.js";
import type { Daemon } from "../../src/server/daemon.js";
import { Sandbox } from "../../sdk/src/index.js";

const BIG = 10 * 1024 * 1024;

/** Removes every tar in the sandbox's PATH (busybox's sh runs `tar` as a builtin applet: `which`, not `command -v`); prints the first. */
const REMOVE_TAR = 'p=$(which tar); for t in $(which -a tar); do rm "$t"; done; echo "$p"';

/** A tree with nested and empty directories, a symlink, an executable and a 10 MiB file. */
async function makeTree(root: string): Promise<void> {
  await fsp.mkdir(path.join(root, "a/b/c"), { recursive: true });
  await fsp.mkdir(path.join(root, "empty"));
  await fsp.writeFile(path.join(root, "a/b/c/deep.txt"), "deep\n");
  await fsp.writeFile(path.join(root, "a/top.txt"), "top\n", { mode: 0o600 });
  await fsp.writeFile(path.join(root, "run.sh"), "#!/bin/sh\necho ran\n");
  await fsp.chmod(path.join(root, "run.sh"), 0o755);
  await fsp.chmod(path.join(root, "a/top.txt"), 0o600);
  await fsp.symlink("a/b/c/deep.txt", path.join(root, "link"));
  await fsp.writeFile(path.join(root, "big.bin"), randomBytes(BIG));
}

/** Every entry under `root`, sorted: its type, its permission bits (files), its target (symlinks) and content hash (files). */
async function describeTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of (await fsp.readdir(path.join(root, rel))).sort()) {
      const r = path.posix.join(rel, name);
      const st = await fsp.lstat(path.join(root, r));
      if (st.isSymbolicLink()) out.push(`${r} -> ${await fsp.readlink(path.join(root, r))}`);
      else if (st.isDirectory()) {
        out.push(`${r}/`);
        await walk(r);
      } else out.push(`${r} ${(st.mode & 0o777).toString(8)} ${createHash("sha256").update(await fsp.readFile(path.join(root, r))).digest("hex")}`);
    }
  };
  await walk("");
  return out.sort();
}

/** The same description, made inside the sandbox by its own tools. */
const describeIn = (dir: string) =>
  `cd ${dir} && find . -mindepth 1 | while read -r p; do r=\${p#./}; if [ -L "$p" ]; then echo "$r -> $(readlink "$p")"; elif [ -d "$p" ]; then echo "$r/"; else echo "$r $(stat -c %a "$p") $(sha256sum < "$p" | cut -d' ' -f1)"; fi; done`;

for (const backend of ["container", "vm"] as const) {
  for (const through of ["daemon", "state dir"] as const) {
    describe(`corral cp -r, ${backend}, through the ${through}`, () => {
      let t: TestState;
      let d: Daemon | undefined;
      let key = "";
      let host: string;
      let src: string;
      let corral: (...args: string[]) => Promise<CliResult>;
      const box = `cp-${backend === "vm" ? "vm" : "ct"}`;
      const sh = async (cmd: string) => corral("exec", box, "--", "sh", "-c", cmd);

      before(async () => {
        t = await freshState(`cp-${backend}-${through === "daemon" ? "d" : "s"}`, { longLived: backend === "vm" || through === "daemon" });
        if (through === "daemon") {
          d = await testDaemon(t);
          key = d.sandboxes.tenants.createKey("cp").key;
          corral = (...args) => corralRemote(d!.url, key, ...args);
        } else corral = (...args) => corralCli(t, ...args);
        host = path.join(path.dirname(t.stateDir), "host");
        src = path.join(host, "src");
        await makeTree(src);
        const made = await corral("create", "-t", "busybox", "--backend", backend, "--name", box, "-m", "256M");
        assert.equal(made.code, 0, made.stderr);
      });
      after(async () => {
        await d?.close();
        await t?.close();
      });

      it("copies a tree in and out: a missing DST is made, an existing one gets SRC inside", async () => {
        const want = await describeTree(src);
        const up = await corral("cp", "-r", src, `${box}:/up`);
        assert.equal(up.code, 0, up.stderr);
        const inside = await sh(describeIn("/up"));
        assert.deepEqual(inside.stdout.trim().split("\n").sort(), want, inside.stderr);

        assert.equal((await corral("cp", "-r", src, `${box}:/up`)).code, 0);
        const nested = await sh(describeIn("/up/src"));
        assert.deepEqual(nested.stdout.trim().split("\n").sort(), want);

        const back = path.join(host, "back");
        const down = await corral("cp", "-r", `${box}:/up/src`, back);
        assert.equal(down.code, 0, down.stderr);
        assert.deepEqual(await describeTree(back), want);
        assert.equal((await corral("cp", "-r", `${box}:/up/src`, back)).code, 0);
        assert.deepEqual(await describeTree(path.join(back, "src")), want);
        // Contents only ("SRC/."), into a directory that exists.
        const dot = path.join(host, "dot");
        await fsp.mkdir(dot);
        assert.equal((await corral("cp", "-r", `${box}:/up/src/a/.`, dot)).code, 0);
        assert.deepEqual(await describeTree(dot), want.filter((l) => l.startsWith("a/") && l !== "a/").map((l) => l.slice(2)));
        // A single file still goes as today, -r or not.
        assert.equal((await corral("cp", "-r", `${box}:/up/run.sh`, path.join(host, "one.sh"))).code, 0);
        assert.equal(((await fsp.stat(path.join(host, "one.sh"))).mode & 0o777).toString(8), "755");
      });

      it("refuses a directory without -r, and a missing path, with one line and exit 1", async () => {
        const noR = await corral("cp", `${box}:/up`, path.join(host, "x"));
        assert.deepEqual([noR.code, noR.stderr], [1, `corral: ${box}:/up is a directory (cp -r copies directories)\n`]);
        const noRUp = await corral("cp", src, `${box}:/y`);
        assert.deepEqual([noRUp.code, noRUp.stderr], [1, `corral: ${src} is a directory (cp -r copies directories)\n`]);
        const missing = await corral("cp", "-r", `${box}:/no/such`, path.join(host, "x"));
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /^corral: .*(no such file|not found).*\n$/i);
        assert.equal(fs.existsSync(path.join(host, "x")), false);
        const noSrc = await corral("cp", "-r", path.join(host, "no-such"), `${box}:/z`);
        assert.deepEqual([noSrc.code, noSrc.stderr], [1, `corral: ${path.join(host, "no-such")}: no such file or directory\n`]);
        const noParent = await corral("cp", "-r", `${box}:/up`, path.join(host, "no/such"));
        assert.deepEqual([noParent.code, noParent.stderr], [1, `corral: cannot make ${path.join(host, "no/such")}: ${path.join(host, "no")} is not a directory\n`]);
      });

      it("a hostile archive from the sandbox writes nothing outside the host destination", async () => {
        const outside = path.join(host, "outside");
        await fsp.mkdir(outside);
        // What a sandbox can send whatever we ask its tar: symlinks out (absolute,
        // climbing) and members written through them, climbing and absolute names.
        const hostile = tarArchive([
          { name: "tmp/", type: "dir" },
          // (Names and targets past ustar's 100 bytes go in PAX records, as GNU tar writes them.)
          { name: "tmp/x", type: "symlink", pax: { linkpath: outside } },
          { name: "tmp/x/evil-abs", data: "evil" },
          { name: "tmp/y", type: "symlink", linkname: "../outside" },
          { name: "tmp/y/evil-rel", data: "evil" },
          { name: "tmp/z", type: "symlink", linkname: "/" },
          { name: "tmp/z/evil-root", pax: { path: `tmp/z${outside}/evil-root` }, data: "evil" },
          { name: "tmp/../../evil-dotdot", data: "evil" },
          { name: "evil-absname", pax: { path: `${outside}/evil-absname` }, data: "evil" },
        ]);
        await fsp.writeFile(path.join(host, "hostile.tar"), hostile);
        const fake = path.join(host, "fake-tar");
        await fsp.writeFile(fake, "#!/bin/sh\ncat /hostile.tar\n", { mode: 0o755 });
        assert.equal((await corral("cp", path.join(host, "hostile.tar"), `${box}:/hostile.tar`)).code, 0);
        const tarPath = (await sh(REMOVE_TAR)).stdout.trim();
        assert.match(tarPath, /^\/.*\/tar$/);
        assert.equal((await corral("cp", fake, `${box}:${tarPath}`)).code, 0);
        const before = (await fsp.readdir(host)).sort();

        const dst = path.join(host, "h");
        const r = await corral("cp", "-r", `${box}:/tmp`, dst);
        assert.equal(r.code, 1, "tar refuses the members it will not write");
        assert.equal(r.stderr.split("\n").length, 2, r.stderr);
        assert.deepEqual(await fsp.readdir(outside), []);
        assert.deepEqual((await fsp.readdir(host)).sort(), [...before, "h"].sort());
        assert.equal(fs.existsSync(path.join(path.dirname(host), "evil-dotdot")), false);
        assert.equal(fs.existsSync(path.join(outside, "evil-absname")), false);
      });

      if (backend === "container" && through === "daemon") {
        it("API: 404 for a missing path, 400 for a bad tar, 507 on a full disk, 422 without tar", async () => {
          const small = "cp-small";
          assert.equal((await corral("create", "-t", "busybox", "--name", small, "--disk", "64M")).code, 0);
          const sb = await Sandbox.connect(small, { apiUrl: d!.url, apiKey: key });
          await assert.rejects(sb.files.downloadArchive("/no/such"), { status: 404, code: "sandbox_enoent" });
          await assert.rejects(sb.files.uploadArchive("/tmp/u", "this is not a tar archive at all".repeat(100)), { status: 400, code: "invalid_archive" });
          // A 128 MiB member into a 64 MiB writable layer, streamed as it is made.
          const size = 128 * 1024 * 1024;
          async function* huge() {
            yield tarArchive([{ name: "fill.bin", size }], { end: false }).subarray(0, 512);
            const zeros = Buffer.alloc(1024 * 1024);
            for (let sent = 0; sent < size; sent += zeros.length) yield zeros;
            yield Buffer.alloc(1024);
          }
          await assert.rejects(sb.files.uploadArchive("/work", huge()), { status: 507, code: "sandbox_enospc" });
          const full = await sb.commands.run("rm -f /work/fill.bin; echo ok");
          assert.equal(full.stdout, "ok\n");
          // Round trip through the SDK's own methods (file transfers go over HTTP, whatever the transport).
          await sb.files.write("/tmp/sdk/a.txt", "sdk\n");
          const chunks: Uint8Array[] = [];
          for await (const c of (await sb.files.downloadArchive("/tmp/sdk")) as unknown as AsyncIterable<Uint8Array>) chunks.push(c);
          await sb.files.uploadArchive("/tmp/again", Buffer.concat(chunks));
          assert.equal(await sb.files.read("/tmp/again/sdk/a.txt"), "sdk\n");
          await sb.commands.run(REMOVE_TAR);
          await assert.rejects(sb.files.downloadArchive("/tmp"), { status: 422, code: "tar_missing" });
          await assert.rejects(sb.files.uploadArchive("/tmp", Buffer.concat(chunks)), { status: 422, code: "tar_missing" });
          assert.equal((await corral("rm", small)).code, 0);
        });
      }
    });
  }
}
