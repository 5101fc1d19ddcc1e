import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CLONE_NS_FLAGS, DENIED, ENOSYS, EPERM, defaultSeccompProfile } from "./seccomp.js";

const allowed = (arch: string) => new Set(defaultSeccompProfile(arch).syscalls.filter((r) => r.action === "SCMP_ACT_ALLOW" && !r.args).flatMap((r) => r.names));

describe("defaultSeccompProfile", () => {
  it("is an allowlist: unlisted calls get ENOSYS, the denied ones EPERM", () => {
    const p = defaultSeccompProfile("x64");
    assert.equal(p.defaultAction, "SCMP_ACT_ERRNO");
    assert.equal(p.defaultErrnoRet, ENOSYS);
    const denied = p.syscalls.find((r) => r.names.includes("keyctl"));
    assert.equal(denied?.action, "SCMP_ACT_ERRNO");
    assert.equal(denied?.errnoRet, EPERM);
    for (const n of DENIED) assert.ok(!allowed("x64").has(n), n);
  });

  it("lists only the native architecture, and only calls it has", () => {
    assert.deepEqual(defaultSeccompProfile("x64").architectures, ["SCMP_ARCH_X86_64"]);
    assert.deepEqual(defaultSeccompProfile("arm64").architectures, ["SCMP_ARCH_AARCH64"]);
    // aarch64 (asm-generic) has none of x86_64's legacy calls.
    for (const n of ["open", "stat", "fork", "arch_prctl", "dup2", "poll"]) {
      assert.ok(allowed("x64").has(n), n);
      assert.ok(!allowed("arm64").has(n), n);
    }
    for (const n of ["openat", "newfstatat", "execve", "clock_gettime"]) assert.ok(allowed("arm64").has(n), n);
    assert.throws(() => defaultSeccompProfile("ia32"), /no seccomp profile/);
  });

  it("allows clone only without namespace flags, and refuses each flag with EPERM", () => {
    const rules = defaultSeccompProfile("x64").syscalls.filter((r) => r.names.includes("clone"));
    const allow = rules.find((r) => r.action === "SCMP_ACT_ALLOW");
    assert.deepEqual(allow?.args, [{ index: 0, value: CLONE_NS_FLAGS, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }]);
    const refused = rules.filter((r) => r.errnoRet === EPERM).map((r) => r.args?.[0]?.value ?? 0);
    assert.equal(refused.reduce((a, b) => a | b, 0), CLONE_NS_FLAGS);
    assert.ok(refused.includes(0x10000000)); // CLONE_NEWUSER
  });
});
