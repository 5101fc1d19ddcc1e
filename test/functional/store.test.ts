// The shared store: du counts each layer once, gc removes only what no
// template names and no sandbox stands on (even after its template went).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";

describe("store du and gc", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("store");
  });
  after(async () => t.close());

  /** A small layer of its own content, registered as a template. */
  async function extraTemplate(name: string, content: string): Promise<string> {
    const dir = path.join(t.s.store.tmpDir, `extra-${name}`);
    await fsp.cp((await t.s.store.templateLayerDirs("busybox"))[0]!, dir, { recursive: true, verbatimSymlinks: true });
    await fsp.writeFile(path.join(dir, "etc/extra"), content);
    const layer = await t.s.store.addLayer(dir, `test:${name}`);
    await t.s.store.registerTemplate(name, [layer.digest], `test:${name}`);
    return layer.digest;
  }

  it("keeps what templates and sandboxes use, removes the rest", async () => {
    await t.s.store.ensureTemplate("busybox");
    const [busybox] = (await t.s.store.template("busybox"))!.layers;
    const used = await extraTemplate("extra", "in use");
    const orphan = await extraTemplate("orphan", "nobody");
    await t.s.store.removeTemplate("orphan");

    const sb = await t.s.create({ template: "extra" });
    assert.equal((await t.s.exec(sb.id, { cmd: "cat /etc/extra" }, {})).exitCode, 0);
    await t.s.store.removeTemplate("extra");

    const du = await t.s.diskUsage();
    const row = (d: string) => du.layers.find((l) => l.digest === d);
    assert.deepEqual(row(busybox!)?.templates, ["busybox"]);
    assert.equal(row(used)?.sandboxes, 1);
    assert.ok(du.sharedBytes > 0 && du.sharedBytes >= (row(busybox!)?.bytes ?? 0));
    assert.equal(du.sandboxes.length, 1);

    // Within the grace period nothing new goes.
    assert.deepEqual((await t.s.gc()).removed, []);
    const first = await t.s.gc(0);
    assert.deepEqual(first.removed, [orphan]);
    assert.ok(first.freedBytes > 0);
    await fsp.access(t.s.store.layerDir(used));

    await t.s.destroy(sb.id);
    assert.deepEqual((await t.s.gc(0)).removed, [used]);
    await fsp.access(t.s.store.layerDir(busybox!));
    assert.deepEqual((await t.s.store.layers()).map((l) => l.digest), [busybox]);
  });

  it("commits a persistent sandbox's writes, deletions included, as a new template", async () => {
    const pet = await t.s.create({ template: "busybox", name: "pet", lifetime: { mode: "persistent" } });
    const setup = await t.s.exec(pet.id, { cmd: "mkdir -p /work && echo made > /work/new.txt && rm /bin/cat && rm -r /etc && mkdir /etc && echo only > /etc/only" });
    assert.equal(setup.exitCode, 0);
    const tpl = await t.s.commit("pet", "busybox-plus");
    const base = (await t.s.store.template("busybox"))!.layers;
    assert.deepEqual(tpl.layers.slice(0, base.length), base);
    assert.equal(tpl.layers.length, base.length + 1);
    assert.equal((await t.s.get("pet")).status, "running"); // started again after the copy

    const child = await t.s.create({ template: "busybox-plus" });
    const out: Buffer[] = [];
    // /bin/cat was deleted (a whiteout in the new layer), /etc replaced (an opaque directory).
    const r = await t.s.exec(child.id, { cmd: "head -n1 /work/new.txt; test -e /bin/cat && echo cat-present; ls /etc" }, { onStdout: (b) => out.push(b) });
    assert.equal(Buffer.concat(out).toString(), "made\nonly\n", `exit ${r.exitCode}`);
    // The base template is untouched.
    const plain = await t.s.create({ template: "busybox" });
    assert.equal((await t.s.exec(plain.id, { cmd: "test -e /bin/cat && test -e /etc/passwd" })).exitCode, 0);
    await assert.rejects(t.s.commit("pet", "busybox-plus"), { code: "conflict" });
    const cattle = await t.s.create({ template: "busybox" });
    await assert.rejects(t.s.commit(cattle.id, "from-cattle"), { code: "conflict" });
    for (const x of [pet, child, plain, cattle]) await t.s.destroy(x.id);
  });
});
