// A container sandbox runs real commands in real isolation: pid 1 is the
// agent, the host is invisible, the template is never written, files go
// in and out intact.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { freshState, type TestState } from "../helpers/state.js";
import type { SandboxInfo } from "../../src/runtime/sandboxes.js";

describe("container sandbox", () => {
  let t: TestState;
  let sb: SandboxInfo;
  const sh = async (cmd: string) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const r = await t.s.exec(sb.id, { cmd }, { onStdout: (b) => out.push(b), onStderr: (b) => err.push(b) });
    return { ...r, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  };

  before(async () => {
    t = await freshState("basics");
    sb = await t.s.create({ template: "busybox", name: "basics", env: { GREETING: "hello" }, workdir: "/tmp" });
  });
  after(async () => t.close());

  it("runs commands with exit codes, stdout and stderr", async () => {
    const r = await sh("echo out; echo err >&2; exit 7");
    assert.equal(r.exitCode, 7);
    assert.equal(r.stdout, "out\n");
    assert.equal(r.stderr, "err\n");
    const argv = await t.s.exec(sb.id, { argv: ["/bin/true"] });
    assert.equal(argv.exitCode, 0);
  });

  it("has the agent as pid 1", async () => {
    const r = await sh("tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$");
    const [cmdline, mypid] = r.stdout.trim().split("\n");
    assert.match(cmdline ?? "", /^\/\.corral\/corral-agent /);
    assert.ok(Number(mypid) > 1 && Number(mypid) < 100, `shell pid ${mypid}`);
  });

  it("applies the spec's env and workdir, and the request's over them", async () => {
    assert.equal((await sh("echo $GREETING $(pwd)")).stdout, "hello /tmp\n");
    const out: Buffer[] = [];
    await t.s.exec(sb.id, { cmd: "echo $GREETING $(pwd)", env: { GREETING: "bye" }, cwd: "/" }, { onStdout: (b) => out.push(b) });
    assert.equal(Buffer.concat(out).toString(), "bye /\n");
  });

  it("cannot see host processes, files or network", async () => {
    const procs = (await sh("ls /proc | grep -c '^[0-9]'")).stdout.trim();
    assert.ok(Number(procs) < 10, `sees ${procs} processes`);
    assert.equal((await sh(`test -e ${t.stateDir} && echo visible || echo hidden`)).stdout, "hidden\n");
    assert.equal((await sh("test -e /usr/bin/node && echo visible || echo hidden")).stdout, "hidden\n");
    const links = (await sh("ls /sys/class/net")).stdout.trim().split(/\s+/);
    assert.deepEqual(links, ["lo"]);
    assert.equal((await sh("hostname")).stdout, "basics\n");
  });

  it("runs as root of its own user namespace, not the host's", async () => {
    const map = (await sh("cat /proc/self/uid_map")).stdout.trim().split(/\s+/).map(Number);
    assert.equal(map[0], 0);
    assert.equal(map[1], t.s.uidBase);
    assert.equal(map[2], 65536);
  });

  it("never writes to the template's layer", async () => {
    assert.equal((await sh("echo mine > /bin/added && rm /bin/cat && echo ok")).stdout, "ok\n");
    const [layer] = await t.s.store.templateLayerDirs("busybox");
    await fsp.access(path.join(layer!, "bin/cat"));
    await assert.rejects(fsp.access(path.join(layer!, "bin/added")));
    const other = await t.s.create({ template: "busybox" });
    const r = await t.s.exec(other.id, { cmd: "test ! -e /bin/added && test -e /bin/cat" }, {});
    assert.equal(r.exitCode, 0);
    await t.s.destroy(other.id);
  });

  it("round-trips a 5 MiB file with the same hash", async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const c = await t.s.agent(sb.id);
    try {
      const w = await c.writeFile("/work/blob.bin", data, { mkdirs: true });
      assert.equal(w.size, data.length);
      const back = await c.readFileBuffer("/work/blob.bin");
      assert.equal(createHash("sha256").update(back).digest("hex"), createHash("sha256").update(data).digest("hex"));
      const inside = await sh("sha256sum /work/blob.bin");
      assert.equal(inside.stdout.split(" ")[0], createHash("sha256").update(data).digest("hex"));
    } finally {
      c.close();
    }
  });

  it("stats, lists, makes and removes directories", async () => {
    const c = await t.s.agent(sb.id);
    try {
      await c.mkdir("/work/a/b/c", { parents: true });
      await c.writeFile("/work/a/b/c/f.txt", "x");
      const st = await c.stat("/work/a/b/c/f.txt");
      assert.equal(st.type, "file");
      assert.equal(st.size, 1);
      const names = (await c.list("/work/a/b/c")).map((e) => e.name);
      assert.deepEqual(names, ["f.txt"]);
      await assert.rejects(c.remove("/work/a"), /ENOTEMPTY|not empty/i);
      await c.remove("/work/a", { recursive: true });
      await assert.rejects(c.stat("/work/a"), (e: Error & { errno?: string }) => e.errno === "ENOENT");
    } finally {
      c.close();
    }
  });

  it("streams output before the command ends", async () => {
    const c = await t.s.agent(sb.id);
    try {
      const started = Date.now();
      let firstAt = 0;
      const h = c.exec({ cmd: "echo first; sleep 1; echo second" }, {
        onStdout: () => {
          if (!firstAt) firstAt = Date.now();
        },
      });
      await h.result;
      const ended = Date.now();
      assert.ok(firstAt > 0 && ended - firstAt >= 800, `first chunk ${firstAt - started} ms, end ${ended - started} ms`);
    } finally {
      c.close();
    }
  });

  it("feeds stdin and times out commands", async () => {
    const c = await t.s.agent(sb.id);
    try {
      const out: Buffer[] = [];
      const h = c.exec({ argv: ["wc", "-c"], stdin: true }, { onStdout: (b) => out.push(b) });
      await h.writeStdin(Buffer.alloc(300_000, 1));
      await h.closeStdin();
      assert.equal((await h.result).exitCode, 0);
      assert.equal(Buffer.concat(out).toString().trim(), "300000");
      const slow = await c.run({ cmd: "sleep 30", timeoutMs: 300 });
      assert.equal(slow.timedOut, true);
      assert.equal(slow.signal, 9);
    } finally {
      c.close();
    }
  });

  it("runs many commands at once on one connection", async () => {
    const c = await t.s.agent(sb.id);
    try {
      const runs = await Promise.all(Array.from({ length: 40 }, (_, i) => c.run({ cmd: `echo ${i}` })));
      runs.forEach((r, i) => assert.equal(r.stdout.toString(), `${i}\n`));
    } finally {
      c.close();
    }
  });
});
