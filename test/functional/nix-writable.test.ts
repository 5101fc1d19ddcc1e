// A writable Nix store inside a sandbox (`nix: { writable: true }`): the
// template's closure (or the host's store) the read-only lower layer, the
// sandbox's own upper, Nix's database holding the store's registration,
// so nix-build inside builds with what is there; the host's store is
// never written. Both backends, on a Nix template standing on debian-nix
// (Debian's nix-bin).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { freshState, type TestState } from "../helpers/state.js";
import { noNix, toolchainNix, writeNixDir } from "../helpers/nix-files.js";

describe("a writable Nix store in a sandbox", { skip: noNix }, () => {
  let t: TestState;
  let dir: string;
  const nonce = randomBytes(4).toString("hex");
  let busybox: string;
  let closure: readonly string[];

  before(async () => {
    t = await freshState("nix-writable");
    dir = path.join(path.dirname(t.stateDir), "nix");
    await writeNixDir(dir, { "toolchain.nix": toolchainNix(nonce) });
    // debian-nix: Debian minbase with nix-bin (mmdebstrap, from Debian's mirror, once).
    const tpl = await t.s.buildNixTemplate("tools", path.join(dir, "toolchain.nix"), { base: "debian-nix" });
    closure = tpl.nix!.storePaths;
    busybox = closure.find((p) => p.endsWith("-busybox-static"))!;
  });
  after(async () => t.close());

  async function run(id: string, cmd: string): Promise<{ code: number | null; out: string }> {
    const out: Buffer[] = [];
    const r = await t.s.exec(id, { cmd: `{ ${cmd}; } 2>&1` }, { onStdout: (b) => out.push(b) });
    return { code: r.exitCode, out: Buffer.concat(out).toString() };
  }

  /** A derivation built inside with the closure's busybox (valid in the sandbox's database, not fetched). */
  const derivation = (label: string) => `builtins.derivation {
  name = "built-inside-${label}-${nonce}";
  system = "x86_64-linux";
  builder = "\${builtins.storePath "${busybox}"}/busybox";
  args = [ "sh" "-c" "echo built inside ${label} > $out" ];
}`;

  const hostValid = (p: string) => spawnSync("nix-store", ["--option", "build-users-group", "", "--check-validity", p]).status === 0;

  for (const backend of ["container", "vm"] as const) {
    it(`nix-build works in a ${backend}; its output stays in the sandbox, the host's store is unchanged`, async () => {
      const before = fs.readdirSync("/nix/store").filter((n) => n.includes(nonce)).sort();
      const sb = await t.s.create({ template: "tools", backend, resources: { memory: backend === "vm" ? "512M" : "1G" }, nix: { writable: true } });
      try {
        assert.deepEqual(await run(sb.id, "hello-nix"), { code: 0, out: "hello from a nix closure\n" });
        // The database knows the closure, and nothing else.
        const valid = await run(sb.id, `nix-store --check-validity ${closure.join(" ")} && echo ok`);
        assert.deepEqual(valid, { code: 0, out: "ok\n" });
        const agent = await t.s.agent(sb.id);
        try {
          await agent.writeFile("/root/d.nix", derivation(backend));
        } finally {
          agent.close();
        }
        const built = await run(sb.id, "nix-build --no-out-link /root/d.nix 2>/dev/null");
        assert.equal(built.code, 0, (await run(sb.id, "nix-build --no-out-link /root/d.nix")).out);
        const out = built.out.trim();
        assert.match(out, new RegExp(`^/nix/store/[0-9a-z]{32}-built-inside-${backend}-${nonce}$`));
        assert.deepEqual(await run(sb.id, `cat ${out}`), { code: 0, out: `built inside ${backend}\n` });
        assert.deepEqual(await run(sb.id, `nix-store --check-validity ${out} && echo valid`), { code: 0, out: "valid\n" });
        // What the sandbox removes from its store (a GC inside would) goes from its own view only.
        const greeting = closure.find((p) => p.includes("-greeting-"))!;
        assert.deepEqual(await run(sb.id, `rm -f ${greeting} && test ! -e ${greeting} && echo gone`), { code: 0, out: "gone\n" });
        assert.equal(fs.readFileSync(greeting, "utf8"), "hello from a nix closure\n");
        // The host: no such path, not registered, nothing of this run's added to its store by the build.
        assert.equal(fs.existsSync(out), false);
        assert.equal(hostValid(out), false);
        assert.deepEqual(fs.readdirSync("/nix/store").filter((n) => n.includes(nonce)).sort(), before);
        for (const p of closure) assert.ok(hostValid(p), p);
      } finally {
        await t.s.destroy(sb.id);
      }
    });
  }

  for (const backend of ["container", "vm"] as const) {
    it(`over the host's whole store shared in (${backend}): nix-build there too, the host's store unchanged`, async () => {
      await t.s.allowShares(["/nix/store"]);
      const sb = await t.s.create({
        template: "debian-nix",
        backend,
        resources: { memory: backend === "vm" ? "512M" : "1G" },
        shares: [{ source: "/nix/store", target: "/nix/store", readOnly: true }],
        nix: { writable: true },
      });
      try {
        const agent = await t.s.agent(sb.id);
        try {
          await agent.writeFile("/root/d.nix", derivation(`host-${backend}`));
        } finally {
          agent.close();
        }
        const built = await run(sb.id, "nix-build --no-out-link /root/d.nix 2>/dev/null");
        assert.equal(built.code, 0, (await run(sb.id, "nix-build --no-out-link /root/d.nix")).out);
        const out = built.out.trim();
        assert.deepEqual(await run(sb.id, `cat ${out}`), { code: 0, out: `built inside host-${backend}\n` });
        assert.equal(fs.existsSync(out), false);
        assert.equal(hostValid(out), false);
      } finally {
        await t.s.destroy(sb.id);
        await t.s.allowShares([]);
      }
    });
  }

  it("is refused, naming the field, without a store to write over", async () => {
    await assert.rejects(t.s.create({ template: "busybox", nix: { writable: true } }), (e: Error & { issues?: { path: string }[] }) => {
      assert.deepEqual(e.issues?.map((i) => i.path), ["nix.writable"]);
      return true;
    });
    assert.deepEqual(await t.s.list(), []);
  });
});
