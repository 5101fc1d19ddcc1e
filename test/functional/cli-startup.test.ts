// What `corral` loads: `--help` only the command table and the parser; a
// command through a daemon the SDK but none of the runtime (zod, SQLite,
// the backends); a command on the state dir the runtime but not the SDK or
// ws. Read from a loader hook's log of every file module the CLI process
// loaded (test/helpers/module-log.ts). Speed is the bench's (npm run bench).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CLI, localEnv } from "../helpers/cli.js";
import { freshState, type TestState } from "../helpers/state.js";
import { testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const HOOK = path.join(dist, "test/helpers/module-log.js");

/** Runs the CLI (not synchronously: the daemon runs in this process); the files it loaded, relative to dist/ (node_modules/<package>/... for dependencies). */
async function loaded(t: TestState, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; files: string[] }> {
  const log = path.join(path.dirname(t.stateDir), `modules-${Math.random().toString(36).slice(2)}.log`);
  const child = spawn(process.execPath, ["--import", HOOK, CLI, ...args], { env: { ...process.env, ...env, CORRAL_MODULE_LOG: log }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr += b));
  const [code] = (await once(child, "close")) as [number | null];
  const r = { status: code, stderr };
  const urls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
  const files = urls
    .map((u) => fileURLToPath(u))
    .filter((f) => f !== HOOK && !f.endsWith("module-log-hooks.js"))
    .map((f) => (f.includes("/node_modules/") ? `node_modules/${f.split("/node_modules/").pop()}` : path.relative(dist, f)));
  return { code: r.status, stderr: r.stderr, files };
}

const under = (files: string[], prefix: string) => files.filter((f) => f.startsWith(prefix));

describe("the modules each kind of corral command loads", () => {
  let t: TestState;
  /** A state dir no daemon serves (on t's, the CLI goes through the daemon). */
  let idle: TestState;
  let d: Daemon;
  let key: string;
  let adminKey: string;
  before(async () => {
    t = await freshState("clistartup");
    idle = await freshState("clistartup-idle");
    d = await testDaemon(t, { adminTenants: ["ops"] });
    key = t.s.tenants.createKey("mods").key;
    adminKey = t.s.tenants.createKey("ops").key;
    await t.s.create({ template: "busybox", name: "mods" }, { tenant: "mods" });
  });
  after(async () => {
    await d?.close();
    await t?.close();
    await idle?.close();
  });

  it("--help: the parser, the command table and help, nothing else", async () => {
    const r = await loaded(t, ["--help"], {});
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.files.sort(), [
      "sdk/src/defaults.js",
      "src/cli/args.js",
      "src/cli/context.js",
      "src/cli/format.js",
      "src/cli/help.js",
      "src/cli/main.js",
      "src/cli/program.js",
      "src/cli/spec-flags.js",
      "src/cli/stdio.js",
      "src/core/errors.js",
    ]);
  });

  it("exec through a daemon: the SDK, not the runtime, zod, SQLite, the backends or ws", async () => {
    const r = await loaded(t, ["exec", "mods", "--", "true"], { CORRAL_API_URL: d.url, CORRAL_API_KEY: key });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.files.includes("sdk/src/http.js"), r.files.join("\n"));
    for (const prefix of ["src/runtime/", "src/backends/", "src/store/", "src/server/", "src/agent/", "node_modules/"]) assert.deepEqual(under(r.files, prefix), [], prefix);
  });

  it("an admin command through a daemon: its command file, its daemon side and the SDK, nothing of the runtime", async () => {
    const r = await loaded(t, ["admin", "tenant", "ls"], { CORRAL_API_URL: d.url, CORRAL_API_KEY: adminKey });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(under(r.files, "src/cli/commands/").sort(), ["src/cli/commands/action.js", "src/cli/commands/admin-remote.js", "src/cli/commands/admin.js"]);
    assert.ok(r.files.includes("sdk/src/admin.js"), r.files.join("\n"));
    for (const prefix of ["src/runtime/", "src/backends/", "src/store/", "src/server/", "src/agent/", "node_modules/"]) assert.deepEqual(under(r.files, prefix), [], prefix);
  });

  it("the same admin command on the state dir: its state dir side, not the SDK", async () => {
    const r = await loaded(idle, ["admin", "tenant", "ls"], localEnv(idle));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(under(r.files, "src/cli/commands/").sort(), ["src/cli/commands/action.js", "src/cli/commands/admin-local.js", "src/cli/commands/admin.js"]);
    assert.deepEqual(under(r.files, "sdk/").filter((f) => f !== "sdk/src/defaults.js"), []);
  });

  it("a command on the state dir: the runtime, not the SDK or ws", async () => {
    const r = await loaded(idle, ["ls"], localEnv(idle));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.files.includes("src/runtime/sandboxes.js"), r.files.join("\n"));
    assert.deepEqual(under(r.files, "sdk/").filter((f) => f !== "sdk/src/defaults.js"), []);
    assert.deepEqual(under(r.files, "node_modules/ws/"), []);
    assert.deepEqual(under(r.files, "src/server/"), []);
  });

  it("a command on a state dir a daemon serves: through the daemon, the SDK and the lock's probe, none of the runtime", async () => {
    const r = await loaded(t, ["ls"], localEnv(t));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.files.includes("sdk/src/http.js"), r.files.join("\n"));
    assert.deepEqual(under(r.files, "src/runtime/"), ["src/runtime/state-dir-lock.js"]);
    for (const prefix of ["src/backends/", "src/store/", "src/server/", "src/agent/"]) assert.deepEqual(under(r.files, prefix), [], prefix);
  });
});
