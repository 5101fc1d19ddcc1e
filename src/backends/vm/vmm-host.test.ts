import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { findOnPath, kvmProblem, vmmAvailability } from "./vmm-host.js";

test("findOnPath, kvmProblem, vmmAvailability", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-vmmhost-"));
  const saved = process.env["PATH"];
  try {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "some-vmm"), "#!/bin/sh\n", { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "not-exec"), "", { mode: 0o644 });
    assert.equal(findOnPath("some-vmm", `/nonexistent:${bin}`), path.join(bin, "some-vmm"));
    assert.equal(findOnPath("not-exec", bin), undefined);
    assert.equal(findOnPath("some-vmm", ""), undefined);
    assert.match(kvmProblem(path.join(dir, "no-kvm")) ?? "", /no-kvm is not usable: ENOENT/);
    process.env["PATH"] = bin;
    assert.deepEqual(vmmAvailability("some-vmm", false, "see x"), { ok: true, binary: path.join(bin, "some-vmm") });
    assert.deepEqual(vmmAvailability("other-vmm", false, "see docs/vm-drivers.md"), {
      ok: false,
      reason: "other-vmm is not installed (not on PATH; see docs/vm-drivers.md)",
    });
  } finally {
    process.env["PATH"] = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
