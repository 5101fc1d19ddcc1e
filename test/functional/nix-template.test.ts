// Templates from a Nix closure, for real: an offline nix-build of
// derivations whose builder is Debian's static busybox, a sandbox that
// runs what they built, sees exactly their closure at /nix/store and
// cannot write to it.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { corralCli } from "../helpers/cli.js";
import { freshState, type TestState } from "../helpers/state.js";
import type { BuildProgress } from "../../src/store/builders/builder.js";
import { noNix, singleNix, toolchainNix, writeNixDir } from "../helpers/nix-files.js";
import { parseDeclared } from "../../src/runtime/declared-state.js";

describe("templates from a Nix closure", { skip: noNix }, () => {
  let t: TestState;
  let dir: string;
  const nonce = randomBytes(4).toString("hex");
  const file = (n: string) => path.join(dir, n);

  before(async () => {
    t = await freshState("nix");
    dir = path.join(path.dirname(t.stateDir), "nix");
    await writeNixDir(dir, {
      "toolchain.nix": toolchainNix(nonce),
      "unrelated.nix": singleNix(`unrelated-${nonce}`, "echo unrelated > $out"),
      "fail.nix": singleNix(`fail-${nonce}`, "echo deliberate failure >&2; exit 3"),
    });
  });
  after(async () => t.close());

  /** Runs a shell command, its stderr (its redirections' too) with its stdout. */
  async function run(id: string, cmd: string): Promise<{ code: number | null; out: string }> {
    const out: Buffer[] = [];
    const r = await t.s.exec(id, { cmd: `{ ${cmd}; } 2>&1` }, { onStdout: (b) => out.push(b) });
    return { code: r.exitCode, out: Buffer.concat(out).toString() };
  }

  let unrelated: string;
  let closure: readonly string[];
  let hello: string;

  it("builds the closure into a template and runs its program, by path and on PATH", async () => {
    const seen: BuildProgress[] = [];
    const tpl = await t.s.buildNixTemplate("toolchain", file("toolchain.nix"), {}, (p) => seen.push(p));
    assert.ok(tpl.nix);
    assert.equal(tpl.nix.shareHostStore, false);
    assert.equal(tpl.nix.outputs.length, 1);
    hello = tpl.nix.outputs[0]!;
    closure = tpl.nix.storePaths;
    // hello, greet-lib, the greeting file and the busybox directory.
    assert.equal(closure.length, 4, closure.join("\n"));
    assert.deepEqual([...closure].sort(), closure);
    assert.ok(closure.some((p) => p.endsWith(`-greet-lib-${nonce}`)) && closure.some((p) => p.endsWith("-busybox-static")));
    assert.ok(seen.some((p) => p.phase === "build" && p.message === `building hello-${nonce}`), JSON.stringify(seen));
    assert.deepEqual(tpl.layers.slice(0, -1), (await t.s.store.template("busybox"))!.layers);

    const sb = await t.s.create({ template: "toolchain" });
    assert.deepEqual(await run(sb.id, `${hello}/bin/hello-nix`), { code: 0, out: "hello from a nix closure\n" });
    const byName = await t.s.exec(sb.id, { argv: ["hello-nix"] }, {});
    assert.equal(byName.exitCode, 0);
    assert.deepEqual(await run(sb.id, "command -v hello-nix"), { code: 0, out: "/nix/var/nix/profiles/default/bin/hello-nix\n" });
    // Host root's files, seen from the sandbox's user namespace: nobody's, and still readable.
    assert.deepEqual(await run(sb.id, `stat -c %u ${hello}/bin/hello-nix`), { code: 0, out: "65534\n" });
    await t.s.destroy(sb.id);
  });

  it("shows exactly the closure, read-only; the whole host store only with shareHostStore", async () => {
    unrelated = (await t.s.buildNixTemplate("unrelated", file("unrelated.nix"), {})).nix!.outputs[0]!;
    assert.ok(fs.existsSync(unrelated)); // on the host

    const sb = await t.s.create({ template: "toolchain" });
    assert.deepEqual(await run(sb.id, "ls /nix/store"), { code: 0, out: closure.map((p) => `${path.basename(p)}\n`).join("") });
    assert.notEqual((await run(sb.id, `test -e ${unrelated}`)).code, 0);
    for (const write of [`touch ${hello}/new`, `rm -f ${hello}/bin/hello-nix`, "mkdir /nix/store/new", `echo x > ${closure.find((p) => p.includes("-greeting-"))}`]) {
      const r = await run(sb.id, write);
      assert.notEqual(r.code, 0, write);
      assert.match(r.out, /Read-only file system/, write);
    }
    assert.deepEqual(await run(sb.id, "hello-nix"), { code: 0, out: "hello from a nix closure\n" });

    const shared = await t.s.buildNixTemplate("toolchain-shared", file("toolchain.nix"), { shareHostStore: true });
    assert.deepEqual(shared.nix?.storePaths, closure);
    const wide = await t.s.create({ template: "toolchain-shared" });
    assert.deepEqual(await run(wide.id, `cat ${unrelated}`), { code: 0, out: "unrelated\n" });
    assert.deepEqual(await run(wide.id, "hello-nix"), { code: 0, out: "hello from a nix closure\n" });
    assert.match((await run(wide.id, `touch ${unrelated}-x`)).out, /Read-only file system/);
    for (const x of [sb, wide]) await t.s.destroy(x.id);
  });

  it("keeps the outputs rooted against the host's Nix GC while the template exists", async () => {
    const root = path.join(t.s.store.nixRootsDir, "unrelated", path.basename(unrelated));
    assert.equal(await fsp.readlink(root), unrelated);
    const auto = "/nix/var/nix/gcroots/auto";
    const autoLinks = await Promise.all((await fsp.readdir(auto)).map((n) => fsp.readlink(path.join(auto, n)).catch(() => "")));
    assert.ok(autoLinks.includes(root), "nix registered the indirect root");
    await t.s.store.removeTemplate("unrelated");
    assert.equal(fs.existsSync(path.dirname(root)), false);
  });

  it("a persistent sandbox keeps its store across stop and start, and a commit keeps the Nix part", async () => {
    const pet = await t.s.create({ template: "toolchain", name: "nixpet", lifetime: { mode: "persistent" } });
    assert.equal((await run(pet.id, "echo kept > /root/note")).code, 0);
    await t.s.stop(pet.id);
    await t.s.start(pet.id);
    assert.deepEqual(await run(pet.id, "cat /root/note; hello-nix"), { code: 0, out: "kept\nhello from a nix closure\n" });
    const committed = await t.s.commit(pet.id, "toolchain-plus");
    assert.deepEqual(committed.nix, (await t.s.store.template("toolchain"))!.nix);
    const child = await t.s.create({ template: "toolchain-plus" });
    assert.deepEqual(await run(child.id, "cat /root/note; hello-nix"), { code: 0, out: "kept\nhello from a nix closure\n" });
    for (const x of [pet, child]) await t.s.destroy(x.id);
  });

  it("a failing build registers nothing and leaves nothing in the store's tmp", async () => {
    await assert.rejects(t.s.buildNixTemplate("broken", file("fail.nix"), {}), /deliberate failure/);
    assert.equal(await t.s.store.template("broken"), undefined);
    assert.deepEqual(await fsp.readdir(t.s.store.tmpDir), []);
    assert.equal(fs.existsSync(path.join(t.s.store.nixRootsDir, "broken")), false);

    // A failed rebuild keeps the template that had the name, and its roots.
    const before = await t.s.store.template("toolchain");
    await assert.rejects(t.s.buildNixTemplate("toolchain", file("fail.nix"), {}), /deliberate failure/);
    assert.deepEqual(await t.s.store.template("toolchain"), before);
    assert.deepEqual(await fsp.readdir(path.join(t.s.store.nixRootsDir, "toolchain")), [path.basename(hello)]);
    assert.deepEqual(await fsp.readdir(t.s.store.tmpDir), []);
    await assert.rejects(t.s.buildNixTemplate("busybox", file("toolchain.nix"), {}), { code: "conflict" });
    await assert.rejects(t.s.buildNixTemplate("nofile", file("missing.nix"), {}), { code: "invalid_argument" });
    await assert.rejects(t.s.buildNixTemplate("Bad Name", file("toolchain.nix"), {}), { code: "invalid_spec" });
  });

  it("a declared sandbox of store paths (the NixOS module's template = [ pkgs... ]): its closure becomes its template", async () => {
    const state = parseDeclared(JSON.stringify({ version: 1, sandboxes: { tools: { spec: { backend: "container" }, nixOutputs: [hello] } } }));
    const r = await t.s.applyDeclared(state);
    assert.deepEqual([r.created, r.errors], [["tools"], []]);
    const tpl = await t.s.store.template("declared-tools");
    assert.deepEqual(tpl?.nix?.storePaths, closure);
    assert.deepEqual(await run((await t.s.get("tools")).id, "hello-nix"), { code: 0, out: "hello from a nix closure\n" });
    // Applied again unchanged: the template is not rebuilt.
    await t.s.applyDeclared(state);
    assert.equal((await t.s.store.template("declared-tools"))?.createdAt, tpl?.createdAt);
    assert.deepEqual((await t.s.applyDeclared(parseDeclared(JSON.stringify({ version: 1 })))).removed, ["tools"]);
    // A path the host's store does not hold: nothing registered, an error for that sandbox alone.
    const bad = await t.s.applyDeclared(parseDeclared(JSON.stringify({ version: 1, sandboxes: { ghost: { spec: {}, nixOutputs: [`/nix/store/${"0".repeat(32)}-ghost`] } } })));
    assert.deepEqual(bad.errors.map((e) => e.name), ["ghost"]);
    assert.equal(await t.s.store.template("declared-ghost"), undefined);
  });

  it("corral template build --nix, then corral run with the program on PATH", async () => {
    const corral = (...args: string[]) => corralCli(t, ...args);
    const b = await corral("template", "build", "clitool", "--nix", file("toolchain.nix"));
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /^clitool \S+ 4 store path\(s\)\n$/);
    const r = await corral("run", "--template", "clitool", "--", "hello-nix");
    assert.deepEqual([r.code, r.stdout], [0, "hello from a nix closure\n"], r.stderr);
    const bad = await corral("template", "build", "clibroken", "--nix", file("fail.nix"));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /deliberate failure/);
    assert.equal(await t.s.store.template("clibroken"), undefined);
  });
});
