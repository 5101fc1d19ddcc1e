// The corral command, run as a user would: run, create, exec, cp, ls,
// inspect, rm; exit codes and one-line errors.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { corralCli } from "../helpers/cli.js";
import { freshState, type TestState } from "../helpers/state.js";

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
    assert.equal(tpl.stderr, 'corral: no template named "nope"\n');
    assert.equal((await corral("rm", "-f", "nosuch")).code, 0);
  });
});
