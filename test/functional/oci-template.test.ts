// Templates from image archives, for real: podman builds and saves an image
// (docker-archive and oci-archive), `corral template build --oci` imports
// it, a sandbox starts on it; hand-made archives check whiteouts, opaque
// directories, dedupe, and that bad archives register nothing.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { corralCli } from "../helpers/cli.js";
import { freshState, type TestState } from "../helpers/state.js";
import { dockerArchive, ociArchive, tarArchive } from "../helpers/tar-writer.js";
import { request, testDaemon } from "../helpers/daemon.js";

const run = promisify(execFile);
const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => fs.existsSync(p));

describe("templates from OCI image archives", () => {
  let t: TestState;
  let tmp: string;
  let baseLayer: Buffer;

  before(async () => {
    t = await freshState("oci");
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-oci-test-"));
    baseLayer = await tarOf(await busyboxRoot(path.join(tmp, "rootfs")));
  });
  after(async () => {
    await t.close();
    await fsp.rm(tmp, { recursive: true, force: true });
  });

  /** A root with static busybox, the applets the tests use, and two files in /etc. */
  async function busyboxRoot(dir: string): Promise<string> {
    assert.ok(BUSYBOX, "a static busybox is needed (apt-get install busybox-static)");
    await fsp.mkdir(path.join(dir, "bin"), { recursive: true });
    await fsp.mkdir(path.join(dir, "etc"));
    await fsp.copyFile(BUSYBOX, path.join(dir, "bin/busybox"));
    await fsp.chmod(path.join(dir, "bin/busybox"), 0o755);
    for (const a of ["sh", "cat", "ls", "rm", "test", "echo"]) await fsp.symlink("busybox", path.join(dir, "bin", a));
    await fsp.writeFile(path.join(dir, "etc/hello"), "hello from the image\n");
    await fsp.writeFile(path.join(dir, "etc/doomed"), "to be deleted\n");
    return dir;
  }

  async function tarOf(dir: string): Promise<Buffer> {
    const file = `${dir}.tar`;
    await run("tar", ["--numeric-owner", "-C", dir, "-cf", file, "."]);
    return fsp.readFile(file);
  }

  const corral = (...args: string[]) => corralCli(t, ...args);

  /** Runs a shell command in a fresh sandbox of `template`; returns stdout. */
  async function inSandbox(template: string, cmd: string): Promise<string> {
    const sb = await t.s.create({ template });
    try {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const r = await t.s.exec(sb.id, { cmd }, { onStdout: (b) => out.push(b), onStderr: (b) => err.push(b) });
      assert.equal(r.exitCode, 0, `${cmd}: ${Buffer.concat(err).toString()}`);
      return Buffer.concat(out).toString();
    } finally {
      await t.s.destroy(sb.id);
    }
  }

  async function write(name: string, data: Buffer): Promise<string> {
    const file = path.join(tmp, name);
    await fsp.writeFile(file, data);
    return file;
  }

  async function tmpEntries(): Promise<string[]> {
    return fsp.readdir(t.s.store.tmpDir);
  }

  it("imports what podman build and podman save make, in both formats", async (ctx) => {
    const root = path.join(tmp, "podman");
    const podman = ["--root", path.join(root, "storage"), "--runroot", path.join(root, "run"), "--storage-driver", "vfs", "--runtime", "runc"];
    const probe = await run("podman", [...podman, "info"]).catch((e: Error) => e);
    if (probe instanceof Error) {
      ctx.skip(`podman cannot run here: ${probe.message.split("\n")[0]}`);
      return;
    }
    await run("podman", [...podman, "import", path.join(tmp, "rootfs.tar"), "localhost/corral-test-base:1"]);
    const ctxDir = path.join(root, "context");
    await fsp.mkdir(ctxDir, { recursive: true });
    await fsp.writeFile(path.join(ctxDir, "added"), "added by podman build\n");
    await fsp.writeFile(path.join(ctxDir, "Containerfile"), "FROM localhost/corral-test-base:1\nCOPY added /etc/added\nRUN rm /etc/doomed\n");
    // This host refuses podman's default rlimits (docs/DESIGN.md, host facts).
    await run("podman", [...podman, "build", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "-t", "localhost/corral-test:1", ctxDir]);
    const docker = path.join(root, "image-docker.tar");
    const oci = path.join(root, "image-oci.tar");
    await run("podman", [...podman, "save", "--format", "docker-archive", "-o", docker, "localhost/corral-test:1"]);
    await run("podman", [...podman, "save", "--format", "oci-archive", "-o", oci, "localhost/corral-test:1"]);

    const r = await corral("template", "build", "from-podman", "--oci", docker);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /layer 3\/3/);
    const tpl = (await t.s.store.template("from-podman"))!;
    assert.equal(tpl.layers.length, 3); // import, COPY, RUN
    assert.match(tpl.source, /^oci:image-docker\.tar@sha256:[0-9a-f]{64}$/);
    const out = await inSandbox("from-podman", "cat /etc/hello /etc/added; test -e /etc/doomed && echo doomed-still-there; ls /etc");
    assert.equal(out, "hello from the image\nadded by podman build\nadded\nhello\nhostname\n");

    // The OCI layout of the same image (gzip layers) names the same store layers.
    const again = await corral("template", "build", "from-podman-oci", "--oci", oci);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((await t.s.store.template("from-podman-oci"))!.layers, tpl.layers);
    assert.deepEqual(await tmpEntries(), []);
  });

  it("turns whiteouts and opaque directories into overlayfs ones", async () => {
    const lower = tarArchive([
      { name: "opt/", type: "dir" },
      { name: "opt/old1", data: "1" },
      { name: "opt/old2", data: "2" },
      { name: "srv/", type: "dir" },
      { name: "srv/keep", data: "k" },
      { name: "srv/gone", data: "g" },
      { name: "srv/dir/", type: "dir" },
      { name: "srv/dir/inner", data: "i" },
    ]);
    const upper = tarArchive([
      { name: "opt/", type: "dir" },
      { name: "opt/.wh..wh..opq", data: "" },
      { name: "opt/new", data: "n" },
      { name: "srv/", type: "dir" },
      { name: "srv/.wh.gone", data: "" },
      { name: "srv/.wh.dir", data: "" },
    ]);
    const file = await write("whiteouts.tar", dockerArchive([baseLayer, lower, upper]));
    const tpl = await t.s.store.importOci("whiteouts", file);
    assert.equal(tpl.layers.length, 3);
    const out = await inSandbox("whiteouts", "echo opt: $(ls -a /opt); echo srv: $(ls -a /srv)");
    assert.equal(out, "opt: . .. new\nsrv: . .. keep\n");

    // The same upper layer without the opaque marker is another layer: its digest sees the xattr.
    const notOpaque = tarArchive([
      { name: "opt/", type: "dir" },
      { name: "opt/new", data: "n" },
      { name: "srv/", type: "dir" },
      { name: "srv/.wh.gone", data: "" },
      { name: "srv/.wh.dir", data: "" },
    ]);
    const plain = await t.s.store.importOci("not-opaque", await write("not-opaque.tar", dockerArchive([baseLayer, lower, notOpaque])));
    assert.deepEqual(plain.layers.slice(0, 2), tpl.layers.slice(0, 2));
    assert.notEqual(plain.layers[2], tpl.layers[2]);
    assert.equal(await inSandbox("not-opaque", "echo $(ls /opt)"), "new old1 old2\n");
  });

  it("stores a layer once, whichever archive or format it came from", async () => {
    const extra = (mtime: number) => tarArchive([{ name: "etc/", type: "dir", mtime }, { name: "etc/extra", data: "same content", mtime }]);
    const a = await t.s.store.importOci("dedupe-a", await write("dedupe-a.tar", dockerArchive([baseLayer, extra(1)])));
    const b = await t.s.store.importOci("dedupe-b", await write("dedupe-b.tar", dockerArchive([baseLayer, extra(1)])));
    // Other bytes (mtimes, gzip, OCI layout), the same tree: the same layer.
    const c = await t.s.store.importOci("dedupe-c", await write("dedupe-c.tar", ociArchive([baseLayer, extra(2)], { Env: ["A=1"], Cmd: ["sh"] })));
    assert.deepEqual(b.layers, a.layers);
    assert.deepEqual(c.layers, a.layers);
    assert.deepEqual(c.image, { env: ["A=1"], cmd: ["sh"] });
    await assert.rejects(t.s.store.importOci("dedupe-a", await write("dedupe-a2.tar", dockerArchive([baseLayer]))), { code: "conflict" });
    await assert.rejects(t.s.store.importOci("busybox", await write("builtin.tar", dockerArchive([baseLayer]))), { code: "conflict" });
  });

  it("refuses corrupt, truncated and escaping archives and registers nothing", async () => {
    const good = dockerArchive([baseLayer, tarArchive([{ name: "etc/", type: "dir" }, { name: "etc/x", data: "x".repeat(5000) }])]);
    const layerAt = good.indexOf(Buffer.from("x".repeat(5000)));
    const flipped = Buffer.from(good);
    flipped[layerAt + 10] = 0x79;
    const ociGood = ociArchive([baseLayer]);
    const cases: [string, Buffer, RegExp][] = [
      ["truncated", good.subarray(0, Math.floor(good.length / 2)), /truncated|has no file/],
      ["flipped", flipped, /does not match its content digest/],
      ["escape", dockerArchive([baseLayer, tarArchive([{ name: "../evil", data: "boom" }])]), /unsafe layer member "\.\.\/evil"/],
      ["absolute", dockerArchive([tarArchive([{ name: "/etc/evil", data: "boom" }])]), /absolute member name/],
      ["symlink-parent", dockerArchive([tarArchive([{ name: "lnk", type: "symlink", linkname: "/" }, { name: "lnk/evil", data: "x" }])]), /symlink in this layer/],
      ["hardlink-out", dockerArchive([tarArchive([{ name: "h", type: "hardlink", linkname: "../../etc/shadow" }])]), /"\.\." in hard link target/],
      ["oci-truncated-gzip", ociGood.subarray(0, ociGood.length - 3000), /truncated|corrupt|does not match|has no file/],
      ["not-an-image", tarArchive([{ name: "hello", data: "x" }]), /not an image archive/],
      ["garbage", Buffer.alloc(4096, 0x41), /not a tar header/],
    ];
    for (const [name, data, want] of cases) {
      const file = await write(`bad-${name}.tar`, data);
      await assert.rejects(t.s.store.importOci(`bad-${name}`, file), want, name);
      assert.equal(await t.s.store.template(`bad-${name}`), undefined, name);
      assert.deepEqual(await tmpEntries(), [], name);
    }
    assert.ok(!fs.existsSync(path.join(t.stateDir, "..", "evil")) && !fs.existsSync("/etc/evil"));

    // Through the CLI: one line naming the problem, a failing exit code.
    const r = await corral("template", "build", "bad-cli", "--oci", path.join(tmp, "bad-escape.tar"));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /corral: unsafe layer member "\.\.\/evil": "\.\." in member name/);
    assert.equal(await t.s.store.template("bad-cli"), undefined);
    assert.deepEqual(await tmpEntries(), []);
  });

  it("imports through the API for allowed tenants only, streaming progress", async () => {
    const d = await testDaemon(t, { templateImporters: ["builders"] });
    try {
      const allowed = t.s.tenants.createKey("builders").key;
      const other = t.s.tenants.createKey("others").key;
      const body = ociArchive([baseLayer, tarArchive([{ name: "etc/", type: "dir" }, { name: "etc/via-api", data: "uploaded\n" }])]);
      const put = (key: string, name: string, data: Buffer) =>
        request(d.url, "PUT", `/v1/templates/${name}/oci`, { key, body: data, headers: { "content-type": "application/x-tar" } });

      const denied = await put(other, "via-api", body);
      assert.equal(denied.status, 403, denied.text);
      assert.equal(denied.json<{ error: { code: string } }>().error.code, "forbidden");

      const ok = await put(allowed, "via-api", body);
      assert.equal(ok.status, 200, ok.text);
      const events = ok.text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      const last = events.at(-1)!;
      assert.equal(last["type"], "done", ok.text);
      assert.deepEqual((last["template"] as { layers: string[] }).layers, (await t.s.store.template("via-api"))!.layers);
      const layerEvents = events.filter((e) => e["phase"] === "layer");
      assert.deepEqual([...new Set(layerEvents.map((e) => e["step"]))], [1, 2]);
      const total = layerEvents[0]!["totalBytes"] as number;
      assert.ok(total > baseLayer.length / 10, `${total}`); // the compressed blobs' size
      assert.ok(layerEvents.every((e) => e["steps"] === 2 && e["totalBytes"] === total && (e["bytes"] as number) <= total));
      assert.equal(events.find((e) => e["phase"] === "done")?.["bytes"], total);
      assert.equal(await inSandbox("via-api", "cat /etc/via-api"), "uploaded\n");

      const taken = await put(allowed, "via-api", body);
      assert.equal(taken.status, 409, taken.text);
      const bad = await put(allowed, "via-api-bad", dockerArchive([tarArchive([{ name: "../evil", data: "x" }])]));
      assert.equal(bad.status, 200);
      assert.match(bad.text, /"type":"error".*unsafe layer member/);
      assert.equal(await t.s.store.template("via-api-bad"), undefined);
      assert.deepEqual(await tmpEntries(), []);
    } finally {
      await d.close();
    }
  });
});
