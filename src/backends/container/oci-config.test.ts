import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSpec } from "../../core/sandbox-spec.js";
import { DEFAULT_PATH, nixStoreMounts, ociConfig } from "./oci-config.js";

const base = {
  id: "abc",
  spec: parseSpec({ template: "busybox" }),
  hostname: "h",
  agentDir: "/agent",
  runDir: "/run-dir",
  uidBase: 0x60000000,
  cgroupPath: "corral/abc",
};

interface Config {
  process: { args: string[]; env: string[] };
  mounts: { destination: string; source: string; type: string; options: string[] }[];
}

test("a sandbox without Nix gets no /nix mounts and the default PATH", () => {
  const c = ociConfig(base) as unknown as Config;
  assert.equal(c.mounts.filter((m) => m.destination.startsWith("/nix")).length, 0);
  assert.ok(!c.process.args.includes("--path"));
  assert.ok(c.process.env.includes(`PATH=${DEFAULT_PATH}`));
});

test("Nix store paths are mounted read-only, below a read-only /nix/store, with the profile first in PATH", () => {
  const paths = ["/nix/store/qp4i8lpqnq8hxylfjfalgl2xwfmazdg8-hello", "/nix/store/r9zgkzc5zab416qddj283jlsvp18ydzr-busybox-static"];
  const c = ociConfig({ ...base, nixStore: { dir: "/layer/nix/store", paths } }) as unknown as Config;
  const nix = c.mounts.filter((m) => m.destination.startsWith("/nix"));
  assert.deepEqual(
    nix.map((m) => [m.destination, m.source]),
    [["/nix/store", "/layer/nix/store"], ...paths.map((p) => [p, p])],
  );
  for (const m of nix) {
    assert.equal(m.type, "bind");
    for (const o of ["ro", "nosuid", "nodev"]) assert.ok(m.options.includes(o), `${m.destination} ${o}`);
    assert.ok(!m.options.includes("rbind") && !m.options.includes("rw"));
  }
  // After the mounts that must come first (/proc, /dev ...), and /nix/store before what goes below it.
  assert.equal(c.mounts.findIndex((m) => m.destination === "/nix/store"), c.mounts.length - paths.length - 1);
  const path = `/nix/var/nix/profiles/default/bin:${DEFAULT_PATH}`;
  assert.deepEqual(c.process.args.slice(-2), ["--path", path]);
  assert.ok(c.process.env.includes(`PATH=${path}`));
});

test("sharing the host store is one read-only mount of it", () => {
  assert.deepEqual(nixStoreMounts({ dir: "/nix/store", paths: [] }), [
    { destination: "/nix/store", type: "bind", source: "/nix/store", options: ["bind", "ro", "nosuid", "nodev"] },
  ]);
});
