// template, store and admin through a real corrald (CORRAL_API_URL set, a
// state dir that does not exist): with an admin tenant's key each command
// does what it does on the state dir and prints the same (the same command
// with --state-dir on the daemon's state dir is the reference); with
// another tenant's key the shared things are refused in one line, exit 1.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { corralCli, corralRemote, type CliResult } from "../helpers/cli.js";
import { testDaemon } from "../helpers/daemon.js";
import { freshState, type TestState } from "../helpers/state.js";
import { dockerArchive } from "../helpers/tar-writer.js";
import { POOL_TENANT } from "../../src/runtime/pools.js";
import type { Daemon } from "../../src/server/daemon.js";

const run = promisify(execFile);
const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => fs.existsSync(p));

/** The one line a refused key gets, naming what it may not do. */
const forbidden = (tenant: string, what: string) =>
  new RegExp(`^corral: forbidden: tenant "${tenant}" may not ${what}\\b[^\\n]*--admin-tenant[^\\n]*\\n$`);

describe("corral template, store and admin through corrald", () => {
  let t: TestState;
  let d: Daemon;
  let adminKey: string;
  let userKey: string;
  let tmp: string;
  /** Through the daemon, with the admin tenant's key. */
  const admin = (...args: string[]) => remote(adminKey, args);
  /** Through the daemon, with a key of a tenant that is not an admin. */
  const user = (...args: string[]) => remote(userKey, args);
  /** On the daemon's state dir, for the output to compare with. */
  const local = (...args: string[]) => corralCli(t, ...args);

  const remote = (key: string, args: string[]) => corralRemote(d.url, key, ...args);

  before(async () => {
    t = await freshState("cliadmin");
    tmp = path.dirname(t.stateDir);
    d = await testDaemon(t, { adminTenants: ["ops"] });
    adminKey = t.s.tenants.createKey("ops").key;
    userKey = t.s.tenants.createKey("dev").key;
  });
  after(async () => {
    await d?.close();
    await t?.close();
  });

  /** Asserts success and returns stdout. */
  function ok(r: CliResult): string {
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  }

  it("admin key create, ls, revoke", async () => {
    const key = ok(await admin("admin", "key", "create", "--tenant", "acme")).trim();
    assert.match(key, /^crl_[0-9a-f]{12}_/);
    assert.equal(d.sandboxes.tenants.authenticate(key), "acme");
    const id = key.split("_")[1]!;
    const listed = ok(await admin("admin", "key", "ls", "--tenant", "acme")).trimEnd().split("\n");
    assert.equal(listed.length, 2, listed.join("\n"));
    assert.match(listed[0]!, /^ID\s+TENANT\s+CREATED\s+LAST USED\s+STATE$/);
    assert.match(listed[1]!, new RegExp(`^${id}\\s+acme\\s+\\S+\\s+-\\s+active$`));
    assert.equal(ok(await remote(key, ["ls"])), "NAME   ID   TEMPLATE   BACKEND   STATE   AGE   MEMORY   LIFETIME   DECLARED\n");

    assert.deepEqual(await admin("admin", "key", "revoke", id), { code: 0, stdout: "", stderr: "" });
    assert.match(ok(await admin("admin", "key", "ls", "--tenant", "acme")), new RegExp(`^${id}\\s+acme\\s+\\S+\\s+\\S+\\s+revoked$`, "m"));
    const revoked = await remote(key, ["ls"]);
    assert.equal(revoked.code, 1);
    assert.match(revoked.stderr, /^corral: .*API key.*CORRAL_API_KEY.*\n$/);
    const again = await admin("admin", "key", "revoke", id);
    assert.deepEqual([again.code, again.stderr], [1, `corral: no api_key named "${id}"\n`]);

    for (const [args, what] of [
      [["admin", "key", "create", "--tenant", "dev"], "create API keys"],
      [["admin", "key", "ls"], "list API keys"],
      [["admin", "key", "revoke", id], "revoke API keys"],
    ] as const) {
      const r = await user(...args);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, forbidden("dev", what));
      assert.equal(r.stdout, "");
    }
  });

  it("admin tenant create, quota, ls: as on the state dir", async () => {
    assert.deepEqual(await admin("admin", "tenant", "create", "team1", "--max-sandboxes", "2", "--max-memory", "1G"), { code: 0, stdout: "", stderr: "" });
    assert.deepEqual([d.sandboxes.tenants.get("team1").maxSandboxes, d.sandboxes.tenants.get("team1").maxMemory], [2, 1024 ** 3]);
    const dup = await admin("admin", "tenant", "create", "team1");
    assert.deepEqual([dup.code, dup.stderr], [1, 'corral: tenant "team1" already exists\n']);
    assert.deepEqual([(await local("admin", "tenant", "create", "team1")).stderr], [dup.stderr]);

    assert.equal((await admin("admin", "tenant", "quota", "team1", "--max-sandboxes", "none")).code, 0);
    assert.equal(d.sandboxes.tenants.get("team1").maxSandboxes, null);
    const missing = await admin("admin", "tenant", "quota", "nosuch", "--max-sandboxes", "1");
    assert.deepEqual([missing.code, missing.stderr], [1, 'corral: no tenant named "nosuch"\n']);
    assert.equal((await local("admin", "tenant", "quota", "nosuch", "--max-sandboxes", "1")).stderr, missing.stderr);
    const bad = await admin("admin", "tenant", "quota", "team1", "--max-memory", "lots");
    assert.deepEqual([bad.code, bad.stderr], [1, 'corral: --max-memory must be a size like 8G or none, got "lots"\n']);

    const listed = ok(await admin("admin", "tenant", "ls"));
    assert.match(listed, /^team1\s+-\s+1GiB$/m);
    assert.equal(listed, ok(await local("admin", "tenant", "ls")));

    for (const args of [["admin", "tenant", "ls"], ["admin", "tenant", "create", "team2"], ["admin", "tenant", "quota", "team1", "--max-sandboxes", "9"]]) {
      const r = await user(...args);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, forbidden("dev", "list tenants"));
    }
    assert.equal(d.sandboxes.tenants.get("team1").maxSandboxes, null);
  });

  it("template build (built-in, --oci with progress), ls, commit, rm; store du and gc", async () => {
    // A built-in one: any key may build it; progress on stderr, one line per step off a terminal.
    const built = await user("template", "build", "busybox");
    assert.equal(built.code, 0, built.stderr);
    const busybox = (await t.s.store.template("busybox"))!;
    assert.equal(built.stdout, `busybox ${busybox.layers.join(",")}\n`);
    assert.match(built.stderr, /^building template busybox: /m);
    const typo = await user("template", "build", "debian2");
    assert.deepEqual([typo.code, typo.stdout], [1, ""]);
    assert.match(typo.stderr, /^corral: "debian2" is neither a built-in template nor one the daemon has .* --oci ARCHIVE .*\n$/);
    const nix = await admin("template", "build", "tools", "--nix", path.join(tmp, "tools.nix"));
    assert.deepEqual([nix.code, nix.stderr], [1, "corral: template build --nix acts on the state dir only (the daemon's API takes no Nix files): run it on the daemon's host with --state-dir\n"]);

    // An image archive on this host, sent to the daemon as it is read.
    assert.ok(BUSYBOX, "a static busybox is needed (apt-get install busybox-static)");
    const root = path.join(tmp, "image");
    await fsp.mkdir(path.join(root, "bin"), { recursive: true });
    await fsp.mkdir(path.join(root, "etc"));
    await fsp.copyFile(BUSYBOX, path.join(root, "bin/busybox"));
    for (const a of ["sh", "cat"]) await fsp.symlink("busybox", path.join(root, "bin", a));
    await fsp.writeFile(path.join(root, "etc/hello"), "hello from the image\n");
    await run("tar", ["--numeric-owner", "-C", root, "-cf", `${root}.tar`, "."]);
    const archive = path.join(tmp, "image-docker.tar");
    await fsp.writeFile(archive, dockerArchive([await fsp.readFile(`${root}.tar`)]));

    const refused = await user("template", "build", "fromimg", "--oci", archive);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^corral: forbidden: tenant "dev" may not import templates .*--admin-tenant.*\n$/);
    const imported = await admin("template", "build", "fromimg", "--oci", archive);
    assert.equal(imported.code, 0, imported.stderr);
    const tpl = (await t.s.store.template("fromimg"))!;
    assert.equal(imported.stdout, `fromimg ${tpl.layers.join(",")}\n`);
    assert.match(imported.stderr, /^building template fromimg: layer - .*\n/m);
    const noFile = await admin("template", "build", "fromnothing", "--oci", path.join(tmp, "none.tar"));
    assert.deepEqual([noFile.code, noFile.stderr], [1, `corral: cannot read the image archive ${path.join(tmp, "none.tar")}: ENOENT\n`]);
    const r = await user("run", "-t", "fromimg", "--", "cat", "/etc/hello");
    assert.deepEqual([r.code, r.stdout], [0, "hello from the image\n"], r.stderr);

    const listed = ok(await user("template", "ls"));
    // The API takes the archive's bytes, not its file name: the daemon calls it "upload".
    assert.match(listed, /^fromimg\s+built\s+\S+\s+oci:upload@sha256:[0-9a-f]{64}$/m);
    assert.equal(listed, ok(await local("template", "ls")));

    // commit: a persistent sandbox's writes as a template (an admin tenant's key; its own sandbox).
    assert.equal(ok(await admin("create", "-t", "busybox", "--name", "pet", "--persistent")), "pet\n");
    assert.equal((await admin("exec", "pet", "--", "sh", "-c", "echo kept > /kept")).code, 0);
    // Another tenant, even of its own sandbox: templates are every tenant's.
    assert.equal(ok(await user("create", "-t", "busybox", "--name", "devpet", "--persistent")), "devpet\n");
    const notAdmin = await user("template", "commit", "devpet", "petimg");
    assert.equal(notAdmin.code, 1);
    assert.match(notAdmin.stderr, forbidden("dev", "make templates"));
    assert.equal((await user("rm", "devpet")).code, 0);
    const committed = await admin("template", "commit", "pet", "petimg");
    assert.equal(committed.code, 0, committed.stderr);
    assert.equal(committed.stdout, `petimg ${(await t.s.store.template("petimg"))!.layers.join(",")}\n`);
    assert.equal(ok(await user("run", "-t", "petimg", "--", "cat", "/kept")), "kept\n");

    // store du: every layer once, the sandboxes' own bytes; the same table as on the state dir.
    const du = ok(await admin("store", "du"));
    assert.match(du, new RegExp(`^${tpl.layers[0]!.slice(0, 12)}\\s+\\S+\\s+fromimg\\s+0$`, "m"));
    assert.match(du, /^pet\s+[0-9a-f]{16}\s+\S+$/m);
    assert.equal(du, ok(await local("store", "du")));
    assert.match((await user("store", "du")).stderr, forbidden("dev", "see the store's usage"));

    // rm: an admin tenant's key; the layers go at a gc (not within a minute of their making).
    assert.match((await user("template", "rm", "fromimg")).stderr, forbidden("dev", "remove templates"));
    assert.deepEqual(await admin("template", "rm", "fromimg"), { code: 0, stdout: "", stderr: "" });
    assert.equal(await t.s.store.template("fromimg"), undefined);
    const gone = await admin("template", "rm", "fromimg");
    assert.deepEqual([gone.code, gone.stderr], [1, 'corral: no template named "fromimg" (corral template ls lists the templates)\n']);
    const gc = await admin("store", "gc");
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /^removed \d+ layer\(s\) and \d+ VM image\(s\), freed \S+\n$/);
    assert.match((await user("store", "gc")).stderr, forbidden("dev", "collect the store's garbage"));
    assert.equal((await admin("rm", "pet")).code, 0);
  });

  it("admin pool set, ls, rm: the daemon fills the pool and empties it", async () => {
    const key = ok(await admin("admin", "pool", "set", "busybox", "--size", "1", "-m", "64M")).trim();
    assert.match(key, /^[0-9a-f]{16}$/);
    const row = (ready: number, target: number) => new RegExp(`^${key}\\s+busybox\\s+container\\s+64MiB\\s+${target}\\s+${ready}$`, "m");
    await until(async () => row(1, 1).test(ok(await user("admin", "pool", "ls"))), "the pool's sandbox ready");
    assert.equal(ok(await admin("admin", "pool", "ls")), ok(await local("admin", "pool", "ls")));

    const refused = await user("admin", "pool", "set", "busybox", "--size", "3");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, forbidden("dev", "set pools"));
    const notRemoved = await user("admin", "pool", "rm", key);
    assert.match(notRemoved.stderr, forbidden("dev", "remove pools"));
    const bad = await admin("admin", "pool", "set", "busybox", "--size", "lots");
    assert.deepEqual([bad.code, bad.stderr], [1, 'corral: --size must be a whole number, got "lots"\n']);

    assert.deepEqual(await admin("admin", "pool", "rm", key), { code: 0, stdout: "", stderr: "" });
    await until(async () => row(0, 0).test(ok(await admin("admin", "pool", "ls"))), "the pool emptied");
    await until(async () => (await d.sandboxes.list({ tenant: POOL_TENANT })).length === 0, "the pool's sandbox removed");
    const missing = await admin("admin", "pool", "rm", "0123456789abcdef");
    assert.deepEqual([missing.code, missing.stderr], [1, 'corral: no pool named "0123456789abcdef"\n']);
  });
});

/** Polls `cond` every 250 ms, for at most 60 s (a pool fills with a container start). */
async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 240; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`waited 60 s for ${what}`);
}
