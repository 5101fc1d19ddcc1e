// Cloud Hypervisor payloads from VmPlans, checked against a schema written
// from CH's published OpenAPI description (schemas/cloud-hypervisor.schema.ts).
// The functional test (test/functional/vm-drivers.test.ts) boots it where
// it is installed and KVM boots the guest; see docs/vm-drivers.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { chCommandLine, chVmConfig, cloudHypervisorDriver } from "./cloud-hypervisor.js";
import { PCI_MODULES } from "./kernel.js";
import { chVmConfigSchema } from "./schemas/cloud-hypervisor.schema.js";
import { samplePlan } from "./vmm-fixtures.js";
import { InvalidArgumentError } from "../../core/errors.js";
import type { VmPlan } from "./plan.js";

const validate = new Ajv2020({ strict: true, allErrors: true }).compile(chVmConfigSchema);
const valid = (body: unknown) => {
  const ok = validate(body);
  return { ok, errors: JSON.stringify(validate.errors) };
};

const plans: VmPlan[] = [
  samplePlan("cattle-1"),
  samplePlan("pet-with-net", { net: true, persistent: true, vcpus: 4, memoryMiB: 2048 }),
  samplePlan("net-only", { net: true, vcpus: 2, memoryMiB: 256 }),
  samplePlan("disk-only", { persistent: true, vcpus: 8, memoryMiB: 8192 }),
];

test("vm.create bodies validate against the VmConfig schema", () => {
  for (const p of plans) {
    const r = valid(chVmConfig(p));
    assert.ok(r.ok, `${p.name}: ${r.errors}`);
  }
});

test("vm.create: units, flags, order and identity", () => {
  const p = samplePlan("pet-with-net", { net: true, persistent: true, vcpus: 4, memoryMiB: 2048 });
  const c = chVmConfig(p);
  assert.deepEqual(c.payload, { kernel: p.kernel, initramfs: p.initrd, cmdline: `${p.cmdline} corral.vsock=1024` });
  assert.equal(c.memory.size, 2048 * 1024 * 1024, "memory.size is in bytes");
  assert.deepEqual(c.cpus, { boot_vcpus: 4, max_vcpus: 4 });
  assert.deepEqual(
    c.disks.map((d) => [d.id, d.readonly]),
    [["root", true], ["data", false]],
    "the erofs root first and read-only, the data disk writable",
  );
  assert.equal(c.disks[0]!.path, p.disks[0]!.path);
  assert.deepEqual(c.vsock, { cid: p.identity.cid, socket: "/var/lib/corral/sandboxes/pet-with-net/vsock.sock" });
  assert.ok(c.vsock.cid >= 3);
  assert.deepEqual(c.net, [{ tap: p.identity.tap, mac: p.identity.mac, id: "net0" }]);
  assert.deepEqual(c.serial, { mode: "Tty" }, "the console on stdout, which the shim bounds");
  assert.deepEqual(c.console, { mode: "Off" });
  assert.equal("net" in chVmConfig(samplePlan("cattle-1")), false, "no net member without a network");
});

test("the schema rejects bodies CH would refuse or misread", () => {
  const good = chVmConfig(plans[1]!);
  const bad: Record<string, unknown> = {
    "memory size as a CLI string": { ...good, memory: { size: "2048M" } },
    "no payload": { ...good, payload: undefined },
    "cpus without max_vcpus": { ...good, cpus: { boot_vcpus: 2 } },
    "zero vcpus": { ...good, cpus: { boot_vcpus: 0, max_vcpus: 0 } },
    "reserved vsock cid 2": { ...good, vsock: { cid: 2, socket: "/x" } },
    "vsock without socket": { ...good, vsock: { cid: 100 } },
    "lower-case serial mode": { ...good, serial: { mode: "file", file: "/x" } },
    "readonly as a string": { ...good, disks: [{ path: "/x", readonly: "on" }] },
    "misspelled member": { ...good, disk: good.disks },
    "old top-level kernel": { ...good, kernel: { path: "/k" } },
  };
  for (const [what, body] of Object.entries(bad)) {
    const b = JSON.parse(JSON.stringify(body)) as unknown; // drops undefined members
    assert.equal(valid(b).ok, false, `accepted: ${what}`);
  }
});

test("command line: the same VM as the API body", () => {
  const p = samplePlan("pet-with-net", { net: true, persistent: true, vcpus: 4, memoryMiB: 2048 });
  const d = "/var/lib/corral/sandboxes/pet-with-net";
  assert.deepEqual(chCommandLine(p), [
    "--kernel", p.kernel,
    "--initramfs", p.initrd,
    "--cmdline", `${p.cmdline} corral.vsock=1024`,
    "--cpus", "boot=4",
    "--memory", "size=2048M",
    "--disk", `path=${p.disks[0]!.path},readonly=on,id=root`, `path=${d}/data.img,readonly=off,id=data`,
    "--net", `tap=${p.identity.tap},mac=${p.identity.mac},id=net0`,
    "--vsock", `cid=${p.identity.cid},socket=${d}/vsock.sock`,
    "--serial", "tty",
    "--console", "off",
  ]);
  const bare = chCommandLine(samplePlan("cattle-1"));
  assert.equal(bare.includes("--net"), false);
  assert.equal(bare.includes("--api-socket"), false);
  assert.deepEqual(bare.slice(bare.indexOf("--disk"), bare.indexOf("--disk") + 2)[1], `path=${plans[0]!.disks[0]!.path},readonly=on,id=root`);
});

test("paths CH cannot take and non-vsock plans are refused", () => {
  const p = samplePlan("x", { persistent: true });
  const comma: VmPlan = { ...p, disks: [{ id: "root", path: "/a,b.erofs", readOnly: true }] };
  assert.throws(() => chCommandLine(comma), /comma: \/a,b\.erofs/);
  assert.ok(valid(chVmConfig(comma)).ok, "the API form has no such limit");
  const serial: VmPlan = { ...p, agent: { kind: "virtio-serial", socket: "/s" } };
  assert.throws(() => chVmConfig(serial), (e: unknown) => e instanceof InvalidArgumentError && /hybrid vsock/.test(e.message));
  const noUds: VmPlan = { ...p, agent: { kind: "vsock", cid: 100, port: 1024 } };
  assert.throws(() => chVmConfig(noUds), /must have agent \{kind: "vsock", uds\}/);
  const long: VmPlan = { ...p, agent: { kind: "vsock", cid: 100, port: 1024, uds: `/${"x".repeat(120)}` } };
  assert.throws(() => chVmConfig(long), /longer than a unix socket address allows/);
});

test("the driver: the command line, wired to the shim over hybrid vsock, with the PCI modules", () => {
  const d = "/var/lib/corral/sandboxes/pet-with-net";
  const p = samplePlan("pet-with-net", { net: true, persistent: true, vcpus: 4, memoryMiB: 2048 });
  const l = cloudHypervisorDriver.render(p, { dir: d, accel: "kvm", runAs: 1234 });
  assert.deepEqual(l, {
    vmm: "cloud-hypervisor",
    binary: "cloud-hypervisor",
    args: chCommandLine(p),
    wiring: { kind: "hybrid-vsock", uds: `${d}/vsock.sock`, port: 1024 },
    guestStop: "poweroff",
    identity: p.identity,
  });
  assert.equal(l.args.includes("--api-socket"), false, "no API socket: nothing is asked of it after boot");
  assert.deepEqual(cloudHypervisorDriver.guestModules, PCI_MODULES);
  assert.equal(cloudHypervisorDriver.needsKvm, true);
  assert.equal(cloudHypervisorDriver.snapshots, undefined, "no snapshots: the backend refuses them");
});

test("a missing binary is reported by name", () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "corral-nopath-"));
  const saved = process.env["PATH"];
  process.env["PATH"] = empty;
  try {
    const a = cloudHypervisorDriver.available();
    assert.equal(a.ok, false);
    assert.equal(a.ok ? "" : a.reason, "cloud-hypervisor is not installed (not on PATH; see docs/vm-drivers.md)");
  } finally {
    process.env["PATH"] = saved;
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
