// A Nix template in a microVM: its closure as an erofs image on its own
// disk, mounted at /nix/store by corral-init (docs/DESIGN.md "Templates
// from a Nix closure"). Before, the VM booted with the layer's empty mount
// points and the program was "not found".
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { freshState, type TestState } from "../helpers/state.js";
import { noNix, singleNix, toolchainNix, writeNixDir } from "../helpers/nix-files.js";
import { closureImagePath } from "../../src/store/nix/closure-image.js";

describe("Nix templates in microVMs", { skip: noNix }, () => {
  let t: TestState;
  let dir: string;
  const nonce = randomBytes(4).toString("hex");
  const file = (n: string) => path.join(dir, n);

  before(async () => {
    t = await freshState("nix-vm");
    dir = path.join(path.dirname(t.stateDir), "nix");
    await writeNixDir(dir, { "toolchain.nix": toolchainNix(nonce), "other.nix": singleNix(`other-${nonce}`, "echo other > $out") });
  });
  after(async () => t.close());

  async function run(id: string, cmd: string): Promise<{ code: number | null; out: string }> {
    const out: Buffer[] = [];
    const r = await t.s.exec(id, { cmd: `{ ${cmd}; } 2>&1` }, { onStdout: (b) => out.push(b) });
    return { code: r.exitCode, out: Buffer.concat(out).toString() };
  }

  it("runs the closure's program, sees exactly the closure and cannot write to it; the image is shared and kept by gc", async () => {
    const tpl = await t.s.buildNixTemplate("toolchain", file("toolchain.nix"), {});
    const closure = tpl.nix!.storePaths;
    const hello = tpl.nix!.outputs[0]!;
    const image = closureImagePath(t.s.store, tpl.nix!.layer);
    assert.equal(fs.existsSync(image), false);

    const vm = await t.s.create({ template: "toolchain", backend: "vm", resources: { memory: "128M" } });
    assert.deepEqual(await run(vm.id, "hello-nix"), { code: 0, out: "hello from a nix closure\n" });
    assert.deepEqual(await run(vm.id, `${hello}/bin/hello-nix`), { code: 0, out: "hello from a nix closure\n" });
    assert.deepEqual(await run(vm.id, "ls /nix/store"), { code: 0, out: closure.map((p) => `${path.basename(p)}\n`).join("") });
    // The store is root's in the guest, as on a NixOS host.
    assert.deepEqual(await run(vm.id, `stat -c %u ${hello}/bin/hello-nix`), { code: 0, out: "0\n" });
    for (const write of [`touch ${hello}/new`, "mkdir /nix/store/new"]) {
      const r = await run(vm.id, write);
      assert.notEqual(r.code, 0, write);
      assert.match(r.out, /Read-only file system/, write);
    }
    assert.ok(fs.existsSync(image));
    const built = (await fsp.stat(image)).mtimeMs;

    // A second VM of the same closure attaches the same image, built once.
    const pet = await t.s.create({ template: "toolchain", backend: "vm", name: "nixpet", lifetime: { mode: "persistent" }, resources: { memory: "128M", disk: "64M" } });
    assert.equal((await fsp.stat(image)).mtimeMs, built);
    assert.equal((await run(pet.id, "echo kept > /root/note")).code, 0);
    await t.s.stop(pet.id);
    await t.s.start(pet.id);
    assert.deepEqual(await run(pet.id, "cat /root/note; hello-nix"), { code: 0, out: "kept\nhello from a nix closure\n" });

    await t.s.destroy(vm.id);
    await t.s.destroy(pet.id);
    await t.s.gc(0);
    assert.ok(fs.existsSync(image), "the template still names the closure");
    await t.s.store.removeTemplate("toolchain");
    await t.s.gc(0);
    assert.equal(fs.existsSync(image), false);
  });

  it("is refused at create, not started empty, when the closure left the host store", async () => {
    const tpl = await t.s.buildNixTemplate("other", file("other.nix"), {});
    // A template record naming a path the host store no longer has (collected, or from another host).
    const gone = `/nix/store/${"0".repeat(32)}-gone-${nonce}`;
    const record = path.join(t.s.store.templatesDir, "other.json");
    await fsp.writeFile(record, JSON.stringify({ ...tpl, nix: { ...tpl.nix!, storePaths: [...tpl.nix!.storePaths, gone] } }));
    await assert.rejects(t.s.create({ template: "other", backend: "vm" }), (e: Error & { code?: string; status?: number }) => {
      assert.equal(e.status, 409);
      assert.match(e.message, new RegExp(`${gone} of the template's Nix closure is no longer in the host's store`));
      return true;
    });
    assert.deepEqual(await t.s.list(), []);
  });

  it("the host's whole store, shared read-only: a --share-host-store template in a VM, and a share in a VM and a container", async () => {
    const other = (await t.s.buildNixTemplate("other-again", file("other.nix"), {})).nix!.outputs[0]!;
    const tpl = await t.s.buildNixTemplate("wide", file("toolchain.nix"), { shareHostStore: true });
    const hello = tpl.nix!.outputs[0]!;
    const vm = await t.s.create({ template: "wide", backend: "vm", resources: { memory: "128M" } });
    try {
      assert.deepEqual(await run(vm.id, "hello-nix"), { code: 0, out: "hello from a nix closure\n" });
      // The whole store: a path outside the template's closure too.
      assert.deepEqual(await run(vm.id, `cat ${other}`), { code: 0, out: "other\n" });
      assert.match((await run(vm.id, `touch ${other}-x`)).out, /Read-only file system/);
    } finally {
      await t.s.destroy(vm.id);
    }
    // Any template, given the store as a share the operator allows.
    await t.s.allowShares(["/nix/store"]);
    for (const backend of ["container", "vm"] as const) {
      const sb = await t.s.create({ template: "busybox", backend, resources: { memory: "128M" }, shares: [{ source: "/nix/store", target: "/nix/store", readOnly: true }] });
      try {
        assert.deepEqual(await run(sb.id, `${hello}/bin/hello-nix`), { code: 0, out: "hello from a nix closure\n" }, backend);
        assert.match((await run(sb.id, `touch ${other}-x`)).out, /Read-only file system/, backend);
      } finally {
        await t.s.destroy(sb.id);
      }
    }
    // A Nix template brings its own store: a share over it is refused, naming the field.
    await assert.rejects(t.s.create({ template: "wide", shares: [{ source: "/nix/store", target: "/nix/store", readOnly: true }] }), (e: Error & { issues?: { path: string }[] }) => {
      assert.deepEqual(e.issues?.map((i) => i.path), ["shares.0.target"]);
      return true;
    });
    await t.s.allowShares([]);
  });
});
