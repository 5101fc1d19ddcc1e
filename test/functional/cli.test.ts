// The corral command, run as a user would: run, create, exec, cp, ls,
// inspect, rm, promote, admin pool; exit codes and one-line errors.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { corralCli } from "../helpers/cli.js";
import { haveCommand } from "../../src/host/command.js";
import { DEFAULT_TEMPLATE } from "../../sdk/src/index.js";
import { freshState, type TestState } from "../helpers/state.js";

const haveNix = await haveCommand("nix-build");

describe("corral CLI", () => {
  let t: TestState;
  let corral: (...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;
  before(async () => {
    t = await freshState("cli");
    corral = (...args) => corralCli(t, ...args);
  });
  after(async () => t.close());

  it("run: a throwaway sandbox with the command's exit code", async () => {
    const r = await corral("run", "--template", "busybox", "--", "sh", "-c", "echo $$; exit 3");
    assert.equal(r.code, 3, r.stderr);
    assert.ok(Number(r.stdout.trim()) < 10, r.stdout);
    assert.equal((await t.s.list()).length, 0);
  });

  it("create, exec, cp both ways, ls, inspect, rm", async () => {
    const c = await corral("create", "--template", "busybox", "--name", "dev1", "--memory", "512M", "--cpus", "1", "--pids", "256");
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, "dev1\n");

    const e = await corral("exec", "dev1", "--", "sh", "-c", "echo hi > /tmp/x; cat /tmp/x");
    assert.equal(e.code, 0, e.stderr);
    assert.equal(e.stdout, "hi\n");
    assert.equal((await corral("exec", "dev1", "--", "sh", "-c", "exit 42")).code, 42);

    const dir = path.dirname(t.stateDir);
    await fsp.writeFile(path.join(dir, "local.txt"), "local content\n");
    assert.equal((await corral("cp", path.join(dir, "local.txt"), "dev1:/work/local.txt")).code, 0);
    assert.equal((await corral("exec", "dev1", "--", "cat", "/work/local.txt")).stdout, "local content\n");
    assert.equal((await corral("cp", "dev1:/work/local.txt", path.join(dir, "back.txt"))).code, 0);
    assert.equal(await fsp.readFile(path.join(dir, "back.txt"), "utf8"), "local content\n");

    const ls = await corral("ls");
    assert.equal(ls.code, 0);
    const [header, row] = ls.stdout.trim().split("\n");
    assert.match(header ?? "", /^NAME\s+ID\s+TEMPLATE\s+BACKEND\s+STATE\s+AGE\s+MEMORY/);
    assert.match(row ?? "", /^dev1\s+[0-9a-f]{16}\s+busybox\s+container\s+running\s+\S+\s+512MiB/);

    const inspect = JSON.parse((await corral("inspect", "dev1")).stdout) as { spec: { resources: { pids: number } }; usage: { pids: number } };
    assert.equal(inspect.spec.resources.pids, 256);
    assert.ok(inspect.usage.pids >= 1);

    assert.equal((await corral("rm", "dev1")).code, 0);
    assert.equal((await corral("ls")).stdout.trim().split("\n").length, 1);
  });

  it("stops and starts a persistent sandbox, keeping its disk", async () => {
    assert.equal((await corral("create", "--template", "busybox", "--name", "pet", "--persistent")).code, 0);
    assert.equal((await corral("exec", "pet", "--", "sh", "-c", "echo kept > /work/f")).code, 0);
    assert.equal((await corral("stop", "pet")).code, 0);
    assert.match((await corral("ls")).stdout, /^pet\s+\S+\s+busybox\s+container\s+stopped/m);
    const refused = await corral("exec", "pet", "--", "true");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /stopped; start it first/);
    assert.equal((await corral("start", "pet")).code, 0);
    assert.equal((await corral("exec", "pet", "--", "cat", "/work/f")).stdout, "kept\n");
    assert.equal((await corral("rm", "pet")).code, 0);
  });

  it("prints one clear line and a non-zero exit for errors", async () => {
    const missing = await corral("exec", "nosuch", "--", "true");
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'corral: no sandbox named "nosuch"\n');
    const bad = await corral("create", "--template", "busybox", "--memory", "lots");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^corral: invalid sandbox spec: resources\.memory: .*\n$/);
    const tpl = await corral("run", "--template", "nope", "--", "true");
    assert.equal(tpl.stderr, 'corral: no template named "nope" (corral template ls lists the templates)\n');
    assert.equal((await corral("rm", "-f", "nosuch")).code, 0);
    const typo = await corral("exce", "dev1");
    assert.deepEqual([typo.code, typo.stderr], [1, 'corral: unknown command "exce"; did you mean exec? (see corral --help)\n']);
    const help = await corral("exec", "--help");
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: corral exec \[options\] <sandbox> <command\.\.\.>\n/);
  });

  it("promote: an ephemeral sandbox is kept, with what it wrote, until rm", async () => {
    assert.equal((await corral("create", "--name", "eph")).code, 0);
    assert.equal((await corral("exec", "eph", "--", "sh", "-c", "echo kept > /tmp/f")).code, 0);
    assert.match((await corral("ls")).stdout, /^eph\s.*expires in/m);
    const p = await corral("promote", "eph");
    assert.deepEqual([p.code, p.stderr], [0, ""]);
    const shown = JSON.parse((await corral("inspect", "eph")).stdout) as { expiresAt: string | null; spec: { template: string; lifetime: { mode: string } } };
    assert.deepEqual([shown.expiresAt, shown.spec.lifetime.mode], [null, "persistent"]);
    // No --template: the SDK's default, the one constant both use.
    assert.equal(shown.spec.template, DEFAULT_TEMPLATE);
    assert.equal((await corral("exec", "eph", "--", "cat", "/tmp/f")).stdout, "kept\n");
    assert.equal((await corral("promote", "nosuch")).stderr, 'corral: no sandbox named "nosuch"\n');
    assert.equal((await corral("rm", "eph")).code, 0);
  });

  it("admin pool set, ls, rm", async () => {
    const set = await corral("admin", "pool", "set", "busybox", "--size", "2", "-m", "64M");
    assert.equal(set.code, 0, set.stderr);
    const key = set.stdout.trim();
    assert.match(key, /^[0-9a-f]{16}$/);
    assert.match((await corral("admin", "pool", "ls")).stdout, new RegExp(`^${key}\\s+busybox\\s+container\\s+64MiB\\s+2\\s+0$`, "m"));
    assert.equal((await corral("admin", "pool", "rm", key)).code, 0);
    assert.match((await corral("admin", "pool", "ls")).stdout, new RegExp(`^${key}\\s+busybox\\s+container\\s+64MiB\\s+0\\s+0$`, "m"));
    const missing = await corral("admin", "pool", "rm", "0123456789abcdef");
    assert.deepEqual([missing.code, missing.stderr], [1, 'corral: no pool named "0123456789abcdef"\n']);
    const bad = await corral("admin", "pool", "set", "busybox", "--size", "lots");
    assert.deepEqual([bad.code, bad.stderr], [1, 'corral: --size must be a whole number, got "lots"\n']);
  });

  it("what a newcomer mistypes: --timeout, a template that is not built in", async () => {
    const zero = await corral("create", "--timeout", "0");
    assert.equal(zero.code, 1);
    assert.equal(zero.stderr, 'corral: --timeout must be whole seconds from 1 to 2592000 (30 days), or with a unit (90s, 10m, 2h, 7d), got "0"; for no timeout use --persistent\n');
    const tenMinutes = await corral("create", "--name", "ten", "--timeout", "10m");
    assert.equal(tenMinutes.code, 0, tenMinutes.stderr);
    assert.equal((JSON.parse((await corral("inspect", "ten")).stdout) as { spec: { lifetime: { timeoutSeconds: number } } }).spec.lifetime.timeoutSeconds, 600);
    const cmdTimeout = await corral("exec", "--timeout", "0", "ten", "--", "true");
    assert.match(cmdTimeout.stderr, /^corral: --timeout must be a positive number of seconds \(30, 0\.5\) or a duration \(10m, 2h\), got "0"; leave it out for no timeout\n$/);
    assert.equal((await corral("exec", "--timeout", "0.5", "ten", "--", "sleep", "5")).code, 137);
    assert.equal((await corral("rm", "ten")).code, 0);

    const typo = await corral("template", "build", "debian2");
    assert.deepEqual(
      [typo.code, typo.stderr],
      [1, 'corral: "debian2" is not a built-in template (those are busybox, debian, debian-nix, e2b-base); to make a new one give --nix FILE (a Nix expression) or --oci ARCHIVE (docker/podman save, an OCI layout tar)\n'],
    );
  });

  it("an image archive that is not a readable file: one line, exit 1", async () => {
    const dir = path.dirname(t.stateDir);
    const r = await corral("template", "build", "fromdir", "--oci", dir);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, "", `corral: cannot read the image archive ${dir}: not a regular file\n`]);
  });

  it("a Nix file that does not parse: the error line and where it is", { skip: !haveNix && "nix-build is not installed" }, async () => {
    const file = path.join(path.dirname(t.stateDir), "bad.nix");
    await fsp.writeFile(file, "let\n  a = 1\n  b = 2;\nin a\n");
    const r = await corral("template", "build", "bad", "--nix", file);
    assert.equal(r.code, 125);
    // After the progress line: the error line itself, then where it is.
    assert.match(r.stderr, new RegExp(`\ncorral: nix-build ${file} failed \\(exit 1\\): error: syntax error, unexpected '='.*\n\\s*at ${file}:3:5:`, "s"));
  });
});
