// What a process in a sandbox is not allowed to do: capabilities beyond the
// reduced set, new privileges, namespaces, mounts, kernel knobs, killing
// the agent.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";
import fs from "node:fs";
import { CAPABILITIES, MASKED_PATHS } from "../../src/backends/container/oci-config.js";

const CAP_BITS: Record<string, number> = {
  CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_FOWNER: 3, CAP_FSETID: 4, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7,
  CAP_SETPCAP: 8, CAP_NET_BIND_SERVICE: 10, CAP_SYS_CHROOT: 18, CAP_AUDIT_WRITE: 29, CAP_SETFCAP: 31,
};

describe("confinement", () => {
  let t: TestState;
  let id: string;
  const sh = async (cmd: string) => {
    const out: Buffer[] = [];
    const r = await t.s.exec(id, { cmd: `${cmd} 2>&1` }, { onStdout: (b) => out.push(b) });
    return { code: r.exitCode, out: Buffer.concat(out).toString() };
  };
  before(async () => {
    t = await freshState("confine");
    id = (await t.s.create({ template: "busybox" })).id;
  });
  after(async () => t.close());

  it("has exactly the reduced capability set, no new privileges, and seccomp", async () => {
    const status = (await sh("cat /proc/self/status")).out;
    const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)`, "m").exec(status)?.[1];
    const expected = CAPABILITIES.reduce((m, c) => m | (1n << BigInt(CAP_BITS[c] ?? -1)), 0n);
    assert.equal(BigInt(`0x${field("CapEff")}`), expected);
    assert.equal(BigInt(`0x${field("CapBnd")}`), expected);
    assert.equal(field("NoNewPrivs"), "1");
    assert.equal(field("Seccomp"), "2");
  });

  it("cannot make namespaces or mounts", async () => {
    assert.notEqual((await sh("unshare -U true")).code, 0);
    assert.notEqual((await sh("unshare -n true")).code, 0);
    assert.notEqual((await sh("mkdir -p /mnt/x && mount -t tmpfs none /mnt/x")).code, 0);
  });

  it("sees masked and read-only kernel files", async () => {
    // Masked files read empty inside (those this kernel has and shows the host non-empty).
    const masked = MASKED_PATHS.filter((p) => p.startsWith("/proc/") && fs.statSync(p, { throwIfNoEntry: false })?.isFile());
    const shownOnHost = masked.filter((p) => fs.readFileSync(p).length > 0);
    assert.ok(shownOnHost.length > 0, `none of ${MASKED_PATHS.join(" ")} is non-empty on this host`);
    for (const p of shownOnHost) assert.equal((await sh(`cat ${p} | wc -c`)).out.trim(), "0", p);
    assert.notEqual((await sh("echo 1 > /proc/sys/vm/drop_caches")).code, 0);
    assert.notEqual((await sh("echo x > /proc/sysrq-trigger")).code, 0);
    assert.notEqual((await sh("touch /sys/kernel/x")).code, 0);
  });

  it("cannot kill or replace the agent", async () => {
    await sh("kill -9 1");
    assert.equal((await sh("echo alive")).out, "alive\n");
    assert.notEqual((await sh("echo x > /.corral/corral-agent")).code, 0);
  });
});
