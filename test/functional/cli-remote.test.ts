// The corral command with CORRAL_API_URL set: the sandbox commands go
// through the SDK to a real daemon (no --state-dir); flags, output, exit
// codes and error lines as without one.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import fsp from "node:fs/promises";
import path from "node:path";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freshState, type TestState } from "../helpers/state.js";
import { testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";
import { DEFAULT_TEMPLATE } from "../../sdk/src/index.js";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/cli/main.js");

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running CLI and its outcome; `env` is laid over the daemon's URL and key. */
function start(args: string[], env: Record<string, string | undefined>, input?: string): { child: ChildProcessWithoutNullStreams; outcome: Promise<Outcome> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  child.stdin.end(input);
  const outcome = once(child, "close").then(([code]) => ({
    code: typeof code === "number" ? code : -1,
    stdout: Buffer.concat(out).toString(),
    stderr: Buffer.concat(err).toString(),
  }));
  return { child, outcome };
}

describe("corral CLI through corrald", () => {
  let t: TestState;
  let d: Daemon;
  let env: Record<string, string | undefined>;
  const corral = (...args: string[]) => start(args, env).outcome;

  before(async () => {
    t = await freshState("cliremote");
    d = await testDaemon(t);
    // Nothing may fall back to a state dir: this one does not exist.
    env = { CORRAL_API_URL: d.url, CORRAL_API_KEY: d.sandboxes.tenants.createKey("cli").key, CORRAL_STATE_DIR: "/nonexistent/corral" };
  });
  after(async () => {
    await d?.close();
    await t?.close();
  });

  it("run: the command's exit code, stdin with -i, nothing left behind", async () => {
    const r = await corral("run", "--template", "busybox", "--", "sh", "-c", "echo $$; exit 3");
    assert.equal(r.code, 3, r.stderr);
    assert.ok(Number(r.stdout.trim()) < 10, r.stdout);
    const piped = await start(["run", "-i", "-t", "busybox", "--", "wc", "-c"], env, "twelve bytes").outcome;
    assert.deepEqual([piped.code, piped.stdout.trim()], [0, "12"], piped.stderr);
    assert.deepEqual(await d.sandboxes.list(), []);
  });

  it("create, exec, cp both ways, ls, inspect, rm", async () => {
    const made = await corral("create", "-t", "busybox", "--name", "dev1", "-m", "512M", "--cpus", "1", "--pids", "256", "-e", "WHO=cli");
    assert.deepEqual([made.code, made.stdout], [0, "dev1\n"], made.stderr);
    assert.equal(d.sandboxes.record("dev1").tenant, "cli");

    const said = await corral("exec", "-e", "X=1", "dev1", "--", "sh", "-c", 'echo "$WHO$X" > /tmp/x; cat /tmp/x; echo oops >&2');
    assert.deepEqual(said, { code: 0, stdout: "cli1\n", stderr: "oops\n" });
    assert.equal((await corral("exec", "dev1", "--", "sh", "-c", "exit 42")).code, 42);

    const host = path.dirname(t.stateDir);
    await fsp.writeFile(path.join(host, "in.txt"), "from the host\n", { mode: 0o640 });
    const up = await corral("cp", path.join(host, "in.txt"), "dev1:/work/");
    assert.equal(up.code, 0, up.stderr);
    const seen = await corral("exec", "dev1", "--", "sh", "-c", "stat -c %a /work/in.txt; cat /work/in.txt");
    assert.equal(seen.stdout, "640\nfrom the host\n");
    const down = await corral("cp", "dev1:/work/in.txt", path.join(host, "out.txt"));
    assert.equal(down.code, 0, down.stderr);
    assert.equal(await fsp.readFile(path.join(host, "out.txt"), "utf8"), "from the host\n");

    const lines = (await corral("ls")).stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.match(lines[0] ?? "", /^NAME\s+ID\s+TEMPLATE\s+BACKEND\s+STATE\s+AGE\s+MEMORY\s+LIFETIME\s+DECLARED$/);
    assert.match(lines[1] ?? "", /^dev1\s+[0-9a-f]{16}\s+busybox\s+container\s+running\s+\S+\s+512MiB\s+expires in \S+\s+-$/);

    const shown = JSON.parse((await corral("inspect", "dev1")).stdout) as {
      name: string;
      status: string;
      spec: { resources: { pids: number; vcpus: number } };
      usage: { pids: number } | null;
    };
    assert.deepEqual([shown.name, shown.status, shown.spec.resources.pids, shown.spec.resources.vcpus], ["dev1", "running", 256, 1]);
    assert.ok((shown.usage?.pids ?? 0) >= 1, "inspect through the daemon shows usage");

    assert.equal((await corral("rm", "dev1")).code, 0);
    assert.equal((await corral("ls")).stdout, "NAME   ID   TEMPLATE   BACKEND   STATE   AGE   MEMORY   LIFETIME   DECLARED\n");
  });

  it("promote: the sandbox becomes persistent on the daemon", async () => {
    assert.equal((await corral("create", "--name", "prom1")).code, 0);
    assert.equal(d.sandboxes.record("prom1").spec.lifetime.mode, "ephemeral");
    const p = await corral("promote", "prom1");
    assert.deepEqual([p.code, p.stderr], [0, ""]);
    const r = d.sandboxes.record("prom1");
    assert.deepEqual([r.spec.lifetime.mode, r.expiresAt, r.spec.template], ["persistent", null, DEFAULT_TEMPLATE]);
    assert.equal((await corral("rm", "prom1")).code, 0);
  });

  it("Ctrl-C during exec ends the command and exits 130", async () => {
    assert.equal((await corral("create", "-t", "busybox", "--name", "sig1")).code, 0);
    const running = start(["exec", "sig1", "--", "sh", "-c", "echo started; exec sleep 300"], env);
    await new Promise<void>((resolve) => running.child.stdout.once("data", () => resolve()));
    assert.match((await corral("exec", "sig1", "--", "ps", "-o", "args")).stdout, /^sleep 300$/m);
    running.child.kill("SIGINT");
    assert.equal((await running.outcome).code, 130);
    let ps = "";
    for (let i = 0; i < 50; i++) {
      ps = (await corral("exec", "sig1", "--", "ps", "-o", "args")).stdout;
      if (!ps.includes("sleep 300")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.doesNotMatch(ps, /sleep 300/);
    assert.equal((await corral("rm", "sig1")).code, 0);
  });

  it("prints one clear line and exit 1 for a refused request, 125 when the daemon is unreachable", async () => {
    const missing = await corral("exec", "nosuch", "--", "true");
    assert.deepEqual(missing, { code: 1, stdout: "", stderr: 'corral: no sandbox named "nosuch"\n' });
    const bad = await corral("create", "-t", "busybox", "--memory", "lots");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^corral: .*resources\.memory.*\n$/);
    assert.equal((await corral("rm", "-f", "nosuch")).code, 0);
    assert.equal((await corral("rm", "nosuch")).code, 1);

    const wrongKey = await start(["ls"], { ...env, CORRAL_API_KEY: "crl_nope_nope" }).outcome;
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stderr, /^corral: .*API key.*CORRAL_API_KEY.*\n$/);
    const noKey = await start(["ls"], { ...env, CORRAL_API_KEY: undefined }).outcome;
    assert.deepEqual([noKey.code, noKey.stderr], [1, `corral: no API key for the daemon at ${d.url}: set CORRAL_API_KEY or pass --api-key\n`]);
    const down = await start(["ls", "--api-url", "http://127.0.0.1:9"], env).outcome;
    assert.equal(down.code, 125);
    assert.match(down.stderr, /^corral: request to corral at http:\/\/127\.0\.0\.1:9 failed: .*\n$/);
  });
});
