// The SDK as a user gets it: `npm pack` of sdk/ (its prepack builds
// sdk/dist), installed into a project outside this checkout, imported by
// package name from an ESM script and a TypeScript file, and used against
// a real daemon: Sandbox.create and a command, over /v1/connect (so ws
// must resolve from the installed package) and over HTTP.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freshState, type TestState } from "../helpers/state.js";
import { testDaemon } from "../helpers/daemon.js";
import type { Daemon } from "../../src/server/daemon.js";

const run = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

const SCRIPT = `
import { Sandbox, DEFAULT_TEMPLATE, NotFoundError } from "@corral/sdk";
const sb = await Sandbox.create({ metadata: { from: "package" } });
const r = await sb.commands.run(["sh", "-c", "echo hi from \${WHO}"], { envs: { WHO: process.argv[2] } });
const info = await sb.info();
await sb.kill();
const gone = await Sandbox.connect(sb.sandboxId).then(() => false, (e) => e instanceof NotFoundError);
console.log(JSON.stringify({ template: info.template, DEFAULT_TEMPLATE, exitCode: r.exitCode, stdout: r.stdout, gone }));
`;

const TYPED = `
import { Sandbox, type CommandResult } from "@corral/sdk";
export async function hello(): Promise<string> {
  const sb = await Sandbox.create({ template: "busybox", resources: { memory: "64M" } });
  const r: CommandResult = await sb.commands.run("echo hi");
  await sb.kill();
  return r.stdout;
}
`;

describe("@corral/sdk packed, installed in a project of its own", () => {
  let t: TestState;
  let d: Daemon;
  let project: string;
  before(async () => {
    t = await freshState("sdkpkg");
    d = await testDaemon(t);
    project = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-sdk-user-"));
  });
  after(async () => {
    await d?.close();
    await t?.close();
    if (project) await fsp.rm(project, { recursive: true, force: true });
  });

  it("npm pack, npm ci --offline, import by name, create and run a command", async () => {
    const packed = await run("npm", ["pack", "--json", "--pack-destination", project], { cwd: path.join(repo, "sdk") });
    const [{ filename, files }] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    const names = files.map((f) => f.path);
    assert.ok(names.includes("dist/index.js") && names.includes("dist/index.d.ts"), names.join(" "));
    assert.deepEqual(names.filter((n) => n.includes(".test.") || n.startsWith("src/")), [], "no tests or sources in the package");
    assert.equal(fs.existsSync(path.join(repo, "sdk", "dist")), false, "postpack removes sdk/dist");

    // Offline: the SDK from its tarball, ws from npm's cache (npm ci of this
    // repository put it there), pinned by a lockfile since --offline cannot
    // fetch ws's registry metadata to resolve a range.
    const tarball = path.join(project, filename);
    const lock = JSON.parse(await fsp.readFile(path.join(repo, "package-lock.json"), "utf8")) as { packages: Record<string, unknown> };
    const pkg = { name: "sdk-user", version: "1.0.0", private: true, type: "module", dependencies: { "@corral/sdk": `file:${filename}` } };
    const sdkMeta = JSON.parse(await fsp.readFile(path.join(repo, "sdk", "package.json"), "utf8")) as { version: string; dependencies: Record<string, string> };
    const integrity = `sha512-${createHash("sha512").update(await fsp.readFile(tarball)).digest("base64")}`;
    await fsp.writeFile(path.join(project, "package.json"), JSON.stringify(pkg));
    await fsp.writeFile(
      path.join(project, "package-lock.json"),
      JSON.stringify({
        name: pkg.name,
        version: pkg.version,
        lockfileVersion: 3,
        requires: true,
        packages: {
          "": { name: pkg.name, version: pkg.version, dependencies: pkg.dependencies },
          "node_modules/@corral/sdk": { version: sdkMeta.version, resolved: `file:${filename}`, integrity, dependencies: sdkMeta.dependencies },
          "node_modules/ws": lock.packages["node_modules/ws"],
        },
      }),
    );
    await run("npm", ["ci", "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: project });

    await fsp.writeFile(path.join(project, "main.mjs"), SCRIPT);
    const key = t.s.tenants.createKey("sdk-user").key;
    for (const transport of ["auto", "http"]) {
      const env = { ...process.env, CORRAL_API_URL: d.url, CORRAL_API_KEY: key, CORRAL_TRANSPORT: transport, NODE_PATH: "" };
      const out = await run(process.execPath, ["main.mjs", transport], { cwd: project, env });
      assert.deepEqual(JSON.parse(out.stdout), { template: "busybox", DEFAULT_TEMPLATE: "busybox", exitCode: 0, stdout: `hi from ${transport}\n`, gone: true }, transport);
    }
    assert.deepEqual(await d.sandboxes.list(), []);

    // Its types, as a TypeScript user's strict build sees them.
    await fsp.writeFile(path.join(project, "typed.ts"), TYPED);
    const tsc = path.join(repo, "node_modules", "typescript", "bin", "tsc");
    const typeRoots = path.join(repo, "node_modules", "@types");
    await run(process.execPath, [tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--typeRoots", typeRoots, "--types", "node", "typed.ts"], {
      cwd: project,
    });
  });
});
