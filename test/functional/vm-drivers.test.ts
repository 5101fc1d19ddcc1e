// One test per VMM driver (spec.vmm), each booting real VMs through the
// backend: commands, the console, its own process, a persistent disk that
// outlives stop and start, and what the driver cannot do (snapshots with
// Cloud Hypervisor and Firecracker) refused. Each runs where its binary is
// installed (and, for the two that need it, KVM boots the guest) and says
// why it skips elsewhere: on these hosts neither cloud-hypervisor nor
// firecracker is packaged (Debian 12), and the nested KVM boots no stock
// guest, so QEMU runs under TCG and the other two skip. A VMM that is not
// installed is refused at create with a 422 naming it, leaving nothing.
import { describe, it, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { shOk } from "../helpers/exec.js";
import { findLeaks } from "../helpers/leaks.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { VmmUnavailableError } from "../../src/core/errors.js";
import { VMM_NAMES, type VmmName } from "../../src/core/sandbox-spec.js";
import { VMM_DRIVERS } from "../../src/backends/vm/vmm-drivers.js";

describe("VMM drivers", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("vm-drivers");
  });
  after(async () => t.close());

  /** Why `vmm` cannot boot a guest here, or undefined when it can. */
  async function whyNot(vmm: VmmName): Promise<string | undefined> {
    const d = VMM_DRIVERS[vmm];
    const a = d.available();
    if (!a.ok) return a.reason;
    if (!d.needsKvm) return undefined;
    const report = await t.s.backend("vm").probe();
    const accel = report.notes.find((n) => n.startsWith("accelerator: "));
    return accel === "accelerator: kvm" ? undefined : `${vmm} needs KVM, and a guest does not boot under KVM on this host (${accel ?? report.notes.join("; ")})`;
  }

  it("a VMM that is not installed is refused at create with a 422 naming its binary, leaving nothing", async (tc: TestContext) => {
    const missing = (["firecracker", "cloud-hypervisor"] as const).find((v) => !VMM_DRIVERS[v].available().ok);
    if (!missing) return tc.skip("both firecracker and cloud-hypervisor are installed here");
    const rows = () => (t.s.db.prepare("SELECT count(*) AS n FROM sandboxes").get() as { n: number }).n;
    const before = rows();
    await assert.rejects(t.s.create({ template: "busybox", backend: "vm", vmm: missing, name: "no-vmm" }), (e: unknown) => {
      assert.ok(e instanceof VmmUnavailableError, String(e));
      assert.equal(e.status, 422);
      assert.equal(e.code, "vmm_unavailable");
      assert.equal(e.binary, missing);
      assert.match(e.message, new RegExp(`^vmm "${missing}" cannot run on this host: ${missing} is not installed`));
      return true;
    });
    // The same through the API: a 422 with the code and the binary's name.
    const d = await testDaemon(t);
    try {
      const key = t.s.tenants.createKey("vmm-api").key;
      const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", backend: "vm", vmm: missing } });
      assert.equal(r.status, 422, r.text);
      const err = r.json<{ error: { code: string; message: string } }>().error;
      assert.equal(err.code, "vmm_unavailable");
      assert.match(err.message, new RegExp(`${missing} is not installed`));
    } finally {
      await d.close();
    }
    assert.equal(rows(), before, "no sandbox row");
    assert.deepEqual(await t.s.list(), []);
    assert.deepEqual(fs.readdirSync(path.join(t.stateDir, "sandboxes")), [], "no sandbox directory");
    assert.deepEqual(await findLeaks(t.stateDir, t.cgroupParent, t.s.cgroupMode), [], "no cgroup, process or mount");
  });

  for (const vmm of VMM_NAMES) {
    it(`${vmm}: runs commands, keeps a persistent disk across stop and start, refuses what it cannot do`, async (tc: TestContext) => {
      const why = await whyNot(vmm);
      if (why) return tc.skip(why);
      const name = `on-${vmm}`;
      const sb = await t.s.create({ template: "busybox", backend: "vm", vmm, name, lifetime: { mode: "persistent" }, resources: { memory: "192M", disk: "64M" } });
      try {
        assert.equal(sb.spec.vmm, vmm);
        assert.equal(await shOk(t.s, sb.id, "hostname; echo $((6 * 7))"), `${name}\n42\n`);
        // The VMM the shim runs is the driver's binary, in the VM's own cgroup.
        const pid = Number(fs.readFileSync(path.join(t.stateDir, "sandboxes", sb.id, "vmm.pid"), "utf8"));
        assert.equal(path.basename(fs.readlinkSync(`/proc/${pid}/exe`)), VMM_DRIVERS[vmm].binary);
        assert.match(fs.readFileSync(`/proc/${pid}/cgroup`, "utf8"), new RegExp(`/${t.cgroupParent}/${sb.id}\\n`));
        // The agent's channel is the driver's: virtio-serial for QEMU, vsock behind the shim's bridge for the others.
        const cmdline = await shOk(t.s, sb.id, "cat /proc/cmdline");
        assert.equal(/corral\.vsock=1024/.test(cmdline), VMM_DRIVERS[vmm].agent === "hybrid-vsock", cmdline);
        assert.match(await t.s.logs(sb.id), /corral-init: agent on /, "the console is kept by the shim");

        await shOk(t.s, sb.id, "echo kept > /data.txt; sync");
        await t.s.stop(sb.id);
        assert.equal((await t.s.get(sb.id)).status, "stopped", "the guest ended itself when asked: not a crash");
        await t.s.start(sb.id);
        assert.equal(await shOk(t.s, sb.id, "cat /data.txt"), "kept\n");

        if (VMM_DRIVERS[vmm].snapshots) {
          const snap = await t.s.snapshot(sb.id, `snap-${vmm}`);
          assert.ok(snap.bytes > 0);
          await t.s.deleteSnapshot(snap.name);
        } else {
          await assert.rejects(t.s.snapshot(sb.id, `snap-${vmm}`), new RegExp(`cannot snapshot a VM run by ${vmm}: snapshots and restores need vmm "qemu"`));
          assert.deepEqual(t.s.listSnapshots(), []);
          assert.equal(await shOk(t.s, sb.id, "cat /data.txt"), "kept\n", "it runs on");
        }
      } finally {
        await t.s.destroy(sb.id);
      }
    });
  }
});
