// The NixOS module, the flake and nix/lib.nix, evaluated for real with
// nixpkgs' lib (no NixOS here: test/nix/eval-module.nix declares the few
// NixOS options the module sets); the rendered unit checked by
// systemd-analyze verify; lib.nix's identities against identity.ts.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { NIXPKGS_LIB, NIX_OPTS, PACKAGE, REPO, evalModule, nixEvalJson, nixInstantiate, noNixEval } from "../helpers/nix-eval.js";
import { assignIdentities, vmIdentity } from "../../src/backends/vm/identity.js";
import { parseDeclared } from "../../src/runtime/declared-state.js";

const TWO = `{
  enable = true;
  package = ${PACKAGE};
  extraPackages = [ ];
  allowedShares = [ "/srv/work" ];
  apiKeys.alice = { keyFile = "/run/keys/alice"; admin = true; };
  pools.busybox = { size = 2; memory = "256M"; };
  sandboxes.dev = { type = "vm"; memory = "256M"; shares = [ { source = "/srv/work/dev"; target = "/work"; } ]; };
  sandboxes.box = { type = "container"; persistent = false; writableStore = true; shares = [ { source = "/srv/work/store"; target = "/nix/store"; readOnly = true; } ]; };
}`;

describe("the NixOS module, the flake and lib.nix", { skip: noNixEval }, () => {
  let dir: string;
  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-nixmod-"));
  });
  after(async () => fsp.rm(dir, { recursive: true, force: true }));

  it("every .nix file of the repository parses", () => {
    const files = ["flake.nix", ...fs.readdirSync(path.join(REPO, "nix")).map((f) => `nix/${f}`), ...fs.readdirSync(path.join(REPO, "test/nix")).map((f) => `test/nix/${f}`)].filter((f) => f.endsWith(".nix"));
    assert.ok(files.length >= 5, files.join(" "));
    for (const f of files) {
      const r = nixInstantiate(["--parse", path.join(REPO, f)]);
      assert.equal(r.code, 0, `${f}: ${r.stderr}`);
    }
  });

  it("renders a declared state the daemon accepts: two sandboxes (a VM, a container), a pool, a share, a key", () => {
    const m = evalModule(dir, TWO);
    assert.deepEqual(m.failedAssertions, []);
    const json = JSON.parse(m.declared) as { sandboxes: Record<string, { spec: Record<string, unknown> }> };
    assert.deepEqual(Object.keys(json.sandboxes).sort(), ["box", "dev"]);
    assert.equal(json.sandboxes["dev"]!.spec["backend"], "vm");
    const state = parseDeclared(m.declared);
    assert.deepEqual(state.allowedShares, ["/srv/work"]);
    assert.deepEqual(state.pools, [{ template: "busybox", size: 2, backend: "container", resources: { memory: "256M" } }]);
    assert.deepEqual(state.apiKeys, [{ tenant: "alice", file: "/run/keys/alice" }]);
    const dev = state.sandboxes.get("dev")!;
    assert.equal(dev.spec.name, "dev");
    assert.equal(dev.spec.resources.memory, 256 * 1024 ** 2);
    assert.equal(dev.spec.lifetime.mode, "persistent");
    assert.deepEqual(dev.spec.shares, [{ source: "/srv/work/dev", target: "/work", readOnly: false }]);
    assert.equal(state.sandboxes.get("box")!.spec.lifetime.mode, "ephemeral");
    assert.deepEqual(state.sandboxes.get("box")!.spec.nix, { writable: true });
    assert.match(m.unit, /--declared \/etc\/corral\/declared\.json --admin-tenant alice/);
    assert.deepEqual(m.reloadTriggers, ["/etc/static/corral/declared.json"]);
    assert.deepEqual(m.tmpfiles, ["d /var/lib/corral 0711 root root -"]);
  });

  it("the unit it renders passes systemd-analyze verify, without a warning", { skip: spawnSync("systemd-analyze", ["--version"]).status === 0 ? false : "systemd-analyze is not installed (apt-get install systemd)" }, async () => {
    const m = evalModule(dir, TWO);
    const unit = path.join(dir, "corral.service");
    await fsp.writeFile(unit, m.unit);
    const r = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", "no warning (unknown keys and bad values are only warned about)");
    for (const key of ["NoNewPrivileges=true", "PrivateTmp=true", "ProtectSystem=strict", "KillMode=process", "CapabilityBoundingSet=CAP_SYS_ADMIN"]) assert.ok(m.unit.includes(`${key}\n`), key);
    // The check fails on what it should: a key systemd does not know.
    await fsp.writeFile(unit, m.unit.replace("KillMode=process", "KillMode=process\nProtectEverything=yes"));
    assert.match(spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" }).stderr, /Unknown key 'ProtectEverything'/);
  });

  it("wrong input fails evaluation with a message naming the option", () => {
    const cases: [string, RegExp][] = [
      [`{ enable = true; package = ${PACKAGE}; extraPackages = [ ]; sandboxes.dev = { memory = "1G"; }; }`, /services\.corral\.sandboxes\.dev\.type' (is used but not defined|was accessed but has no value defined)/],
      [`{ enable = true; package = ${PACKAGE}; extraPackages = [ ]; sandboxes.dev.type = "lxc"; }`, /services\.corral\.sandboxes\.dev\.type' is not of type `one of "vm", "container"'/],
      [
        `{ enable = true; package = ${PACKAGE}; extraPackages = [ ]; allowedShares = [ "/srv/work" ]; sandboxes.dev = { type = "container"; shares = [ { source = "/etc"; target = "/x"; } ]; }; }`,
        /services\.corral\.sandboxes\.dev\.shares\.0\.source: \/etc is not below a directory of services\.corral\.allowedShares/,
      ],
      [
        `{ enable = true; package = ${PACKAGE}; extraPackages = [ ]; allowedShares = [ "/srv/work" ]; sandboxes.dev = { type = "container"; shares = [ { source = "/srv/workshop"; target = "/x"; } ]; }; }`,
        /services\.corral\.sandboxes\.dev\.shares\.0\.source: \/srv\/workshop is not below/,
      ],
      [`{ enable = true; package = ${PACKAGE}; extraPackages = [ ]; sandboxes.Dev.type = "vm"; }`, /services\.corral\.sandboxes\.Dev: the name must be/],
      [`{ enable = true; package = ${PACKAGE}; extraPackages = [ ]; allowedShares = [ "/x" ]; sandboxes.dev = { type = "vm"; shares = [ { source = "/x"; target = "/a b"; } ]; }; }`, /services\.corral\.sandboxes\.dev\.shares\."\[definition 1-entry 1\]"\.target. is not of type/],
    ];
    for (const [config, want] of cases) assert.throws(() => evalModule(dir, config), want, config);
    const bad = evalModule(dir, `{ enable = true; package = ${PACKAGE}; extraPackages = [ ]; allowedShares = [ "/" ]; apiKeys.x.keyFile = "/nix/store/abc-key"; }`);
    assert.deepEqual(bad.failedAssertions, [
      "services.corral.apiKeys.<tenant>.keyFile must be outside the Nix store (it is world-readable)",
      "services.corral.allowedShares: never /, never the state dir (/var/lib/corral) or what holds it",
    ]);
  });

  it("fixes a VM's MAC and CID, and puts a sandbox on a network, as the spec does", () => {
    const m = evalModule(dir, `{ enable = true; package = ${PACKAGE}; extraPackages = [ ];
      sandboxes.web = { type = "vm"; mac = "52:54:00:12:34:56"; cid = 4242; network = { egress.allow = [ "*.pypi.org" ]; networks = [ "build" ]; ports = [ 8000 { port = 9000; public = true; } ]; }; };
      sandboxes.half = { type = "vm"; cid = 4243; network = "nat"; };
      sandboxes.plain = { type = "vm"; }; }`);
    const state = parseDeclared(m.declared);
    const web = state.sandboxes.get("web")!.spec;
    assert.deepEqual(web.identity, { mac: "52:54:00:12:34:56", cid: 4242 });
    assert.deepEqual(web.network, { mode: "nat", egress: { allow: ["*.pypi.org"], deny: [] }, networks: ["build"], ports: [8000, { port: 9000, public: true }] });
    assert.deepEqual(state.sandboxes.get("half")!.spec.identity, { cid: 4243 });
    assert.equal(state.sandboxes.get("half")!.spec.network, "nat");
    assert.equal(state.sandboxes.get("plain")!.spec.identity, undefined);
    // The identity option tells the configuration what the daemon will use.
    assert.deepEqual(m.identities["web"], { ...vmIdentity("web"), mac: "52:54:00:12:34:56", cid: 4242 });
    assert.deepEqual(m.identities["half"], { ...vmIdentity("half"), cid: 4243 });
    assert.deepEqual(m.identities["plain"], { ...vmIdentity("plain") });
    const base = `enable = true; package = ${PACKAGE}; extraPackages = [ ];`;
    const cases: [string, RegExp][] = [
      [`{ ${base} sandboxes.c = { type = "container"; mac = "02:00:00:00:00:01"; }; }`, /services\.corral\.sandboxes\.c\.mac: a fixed MAC is a VM's/],
      [`{ ${base} sandboxes.c = { type = "container"; cid = 7; }; }`, /services\.corral\.sandboxes\.c\.cid: a fixed vsock CID is a VM's/],
      [`{ ${base} sandboxes.a = { type = "vm"; cid = 7; }; sandboxes.b = { type = "vm"; cid = 7; }; }`, /services\.corral\.sandboxes\.a\.cid: 7 is also services\.corral\.sandboxes\.b's/],
      [`{ ${base} sandboxes.a = { type = "vm"; mac = "${vmIdentity("b").mac}"; }; sandboxes.b.type = "vm"; }`, /services\.corral\.sandboxes\.a\.mac: .* is also services\.corral\.sandboxes\.b's/],
      [`{ ${base} sandboxes.a = { type = "vm"; mac = "01:00:5e:00:00:01"; }; }`, /services\.corral\.sandboxes\.a\.mac' is not of type/],
      [`{ ${base} sandboxes.a = { type = "vm"; cid = 2; }; }`, /services\.corral\.sandboxes\.a\.cid' is not of type/],
      [`{ ${base} sandboxes.a = { type = "vm"; network = "bridge"; }; }`, /services\.corral\.sandboxes\.a\.network' is not of type/],
    ];
    for (const [config, want] of cases) assert.throws(() => evalModule(dir, config), want, config);
  });

  it("packages as a template become a closure the daemon builds its template from", () => {
    const m = evalModule(dir, `{ enable = true; package = ${PACKAGE}; extraPackages = [ ];
      sandboxes.tools = { type = "container"; template = [ { type = "derivation"; name = "hello"; outPath = "/nix/store/qp4i8lpqnq8hxylfjfalgl2xwfmazdg8-hello"; } ]; }; }`);
    const tools = parseDeclared(m.declared).sandboxes.get("tools")!;
    assert.deepEqual(tools.nixOutputs, ["/nix/store/qp4i8lpqnq8hxylfjfalgl2xwfmazdg8-hello"]);
    assert.equal(tools.spec.template, "declared-tools");
  });

  it("lib.nix computes MAC, vsock CID and tap as identity.ts does: 100 names, salts and collisions", () => {
    // Short and long, digits only, dashes: 100 different names.
    const names = Array.from({ length: 100 }, (_, i) => [`sb-${i}`, `dev${i}`, `a${i}-b`, `x${i}-${"y".repeat(i % 57)}`, `${i * 7919}`][i % 5]!);
    assert.equal(new Set(names).size, 100);
    const lib = `(import ${REPO}/nix/lib.nix { lib = import ${NIXPKGS_LIB}/lib; })`;
    const fromNix = nixEvalJson<Record<string, unknown>[]>(`map ${lib}.identity (builtins.fromJSON ''${JSON.stringify(names)}'')`);
    assert.deepEqual(fromNix, names.map((n) => ({ ...vmIdentity(n) })));
    const salted = nixEvalJson<unknown[]>(`map (s: ${lib}.identityWithSalt "dev" s) [ 0 1 2 7 ]`);
    assert.deepEqual(salted, [0, 1, 2, 7].map((s) => ({ ...vmIdentity("dev", s) })));
    const assigned = nixEvalJson<Record<string, unknown>>(`${lib}.assignIdentities (builtins.fromJSON ''${JSON.stringify(names)}'')`);
    assert.deepEqual(assigned, Object.fromEntries([...assignIdentities(names)].map(([k, v]) => [k, { ...v }])));
  });

  it("the flake's lib and nixosModules evaluate with nixpkgs overridden by the vendored lib", { skip: flakeSkip() }, async () => {
    // A copy of the flake and nix/ alone: a path flake is copied into the store whole.
    const f = path.join(dir, "flake");
    await fsp.mkdir(path.join(f, "nix"), { recursive: true });
    await fsp.copyFile(path.join(REPO, "flake.nix"), path.join(f, "flake.nix"));
    for (const n of await fsp.readdir(path.join(REPO, "nix"))) await fsp.copyFile(path.join(REPO, "nix", n), path.join(f, "nix", n));
    const nix = (attr: string, apply: string) =>
      spawnSync(
        "nix",
        [...NIX_OPTS, "--extra-experimental-features", "nix-command flakes", "eval", "--json", "--no-write-lock-file", "--override-input", "nixpkgs", `path:${NIXPKGS_LIB}`, `path:${f}#${attr}`, "--apply", apply],
        { encoding: "utf8" },
      );
    const id = nix("lib", 'lib: lib.identity "dev"');
    assert.equal(id.status, 0, id.stderr);
    assert.deepEqual(JSON.parse(id.stdout), { ...vmIdentity("dev") });
    const mod = nix("nixosModules", "m: builtins.isFunction m.default");
    assert.equal(mod.status, 0, mod.stderr);
    assert.equal(mod.stdout.trim(), "true");
    // The module itself, through the flake: imported with the flake's package as its default.
    const imported = nix("nixosModules", `m: (m.default { pkgs = { stdenv.hostPlatform.system = "x86_64-linux"; }; lib = (import ${NIXPKGS_LIB}/lib); }).imports`);
    assert.equal(imported.status, 0, imported.stderr);
    assert.match(imported.stdout, /module\.nix/);
  });
});

function flakeSkip(): string | false {
  const r = spawnSync("nix", ["--extra-experimental-features", "nix-command flakes", "--version"], { encoding: "utf8" });
  return r.status === 0 ? false : "nix (the new CLI) is not installed";
}
