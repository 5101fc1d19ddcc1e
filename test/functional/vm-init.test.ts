// The microVM's init (corral-init, src/backends/vm/native/init.c) booted on
// its own: QEMU with corral's kernel and initramfs, no shim, so what the
// init prints and whether the guest powers itself off are seen directly.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { runCommand } from "../../src/host/command.js";
import { ensureInitrd, PROBE_MARK } from "../../src/backends/vm/initrd.js";
import { bootImage, ensureKernel, PCI_MODULES } from "../../src/backends/vm/kernel.js";
import { guestCmdline, machineArgs, QEMU, type Accel } from "../../src/backends/vm/qemu.js";
import { freshState, type TestState } from "../helpers/state.js";

describe("corral-init, booted alone", () => {
  let t: TestState;
  let boot: (extraCmdline: string, initrdPath?: string) => Promise<{ console: string; code: number | null }>;
  let pciInitrd: () => Promise<string>;
  let skip: string | undefined;

  before(async () => {
    t = await freshState("vm-init");
    const report = await t.s.backend("vm").probe();
    if (!report.available) {
      skip = report.notes.join("; ");
      return;
    }
    const accel = (report.notes.find((x) => x.startsWith("accelerator: "))?.slice("accelerator: ".length) ?? "tcg") as Accel;
    const vmDir = path.join(t.stateDir, "vm");
    const kernel = await ensureKernel(vmDir);
    const initrd = await ensureInitrd(vmDir, kernel);
    pciInitrd = async () => (await ensureInitrd(vmDir, kernel, PCI_MODULES)).path;
    boot = async (extra, initrdPath = initrd.path) => {
      const cmdline = `${guestCmdline({ hostname: "init-test", accel, upper: { kind: "tmpfs", bytes: 1 << 20 } })} ${extra}`;
      const r = await runCommand(
        QEMU,
        [
          ...machineArgs(accel, 1, 128), "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
          "-kernel", bootImage(kernel), "-initrd", initrdPath, "-append", cmdline, "-serial", "stdio",
        ],
        // A guest that hangs instead of powering off is killed at the timeout (a failure).
        { allowFailure: true, timeoutMs: 60_000 },
      );
      return { console: r.stdout, code: r.code };
    };
  });
  after(async () => t.close());

  it("prints the probe mark and powers off with corral.probe=1", async (c) => {
    if (skip) return c.skip(skip);
    const r = await boot("corral.probe=1");
    assert.ok(r.console.includes(PROBE_MARK), r.console.slice(-500));
    assert.equal(r.code, 0, "QEMU ends because the guest powered off");
  });

  it("without the template image disk, says why on the console and powers off", async (c) => {
    if (skip) return c.skip(skip);
    const r = await boot("");
    assert.match(r.console, /corral-init: no template image disk \(serial corral-root\)/);
    assert.equal(r.code, 0, "QEMU ends because the guest powered off, not by the timeout");
  });

  it("refuses a corral.vsock that is not a port number", async (c) => {
    if (skip) return c.skip(skip);
    const r = await boot("corral.vsock=12ab");
    assert.match(r.console, /corral-init: corral.vsock must be a port number, got 12ab/);
    assert.equal(r.code, 0);
  });

  it("passes MODULE.PARAM= words of the command line to that module as it loads it (as modprobe does)", async (c) => {
    if (skip) return c.skip(skip);
    // A value virtio_blk refuses: its load fails, which it can only if the word reached it.
    const r = await boot("virtio_blk.queue_depth=lots");
    assert.match(r.console, /virtio_blk: `lots' invalid for parameter `queue_depth'/);
    assert.match(r.console, /corral-init: insmod virtio_blk: Invalid argument/);
    assert.equal(r.code, 0);
  });

  it("loads Cloud Hypervisor's virtio-pci modules from its own initrd, after the others", async (c) => {
    if (skip) return c.skip(skip);
    const r = await boot("", await pciInitrd());
    assert.doesNotMatch(r.console, /insmod/, r.console.slice(-500));
    assert.match(r.console, /corral-init: no template image disk \(serial corral-root\)/, "it got past loading every module");
  });
});
