// Firecracker's config file from VmPlans, each part checked against the
// definition of the API call that sets the same, from a schema written
// from Firecracker's published swagger description
// (schemas/firecracker.schema.ts). The functional test
// (test/functional/vm-drivers.test.ts) boots it where it is installed and
// KVM boots the guest; see docs/vm-drivers.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { fcBootArgs, fcConfigFile, firecrackerDriver } from "./firecracker.js";
import { fcEndpoints, fcSchema, FC_SCHEMA_ID } from "./schemas/firecracker.schema.js";
import { samplePlan } from "./vmm-fixtures.js";
import { InvalidArgumentError } from "../../core/errors.js";
import type { VmPlan } from "./plan.js";

// strictRequired off: the Drive schema names required members inside oneOf branches
const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true });
ajv.addSchema(fcSchema);
const validator = (def: string) => ajv.compile({ $ref: `${FC_SCHEMA_ID}#/$defs/${def}` });
const check = (def: string, body: unknown) => {
  const v = validator(def);
  return { ok: v(body), errors: JSON.stringify(v.errors) };
};
/** The definition a PUT to `path` takes, per the swagger's paths. */
const defFor = (p: string) => {
  const e = fcEndpoints.find((x) => x.path.test(p));
  assert.ok(e, `no Firecracker endpoint ${p}`);
  return e.def;
};

const plans: VmPlan[] = [
  samplePlan("cattle-1"),
  samplePlan("pet-with-net", { net: true, persistent: true, vcpus: 4, memoryMiB: 2048 }),
  samplePlan("net-only", { net: true, vcpus: 2, memoryMiB: 256 }),
  samplePlan("disk-only", { persistent: true, vcpus: 32, memoryMiB: 8192 }),
];

/** Each part of the config file and the API path whose body it is. */
const parts = (f: ReturnType<typeof fcConfigFile>): [string, unknown][] => [
  ["/boot-source", f["boot-source"]],
  ["/machine-config", f["machine-config"]],
  ...f.drives.map((d): [string, unknown] => [`/drives/${d.drive_id}`, d]),
  ...f["network-interfaces"].map((n): [string, unknown] => [`/network-interfaces/${n.iface_id}`, n]),
  ["/vsock", f.vsock],
];

test("every part of the config file validates as its API call's body", () => {
  for (const p of plans) {
    for (const [at, body] of parts(fcConfigFile(p))) {
      const r = check(defFor(at), body);
      assert.ok(r.ok, `${p.name} ${at}: ${r.errors}`);
    }
  }
});

test("the config file validates as a FullVmConfiguration", () => {
  for (const p of plans) {
    const r = check("FullVmConfiguration", fcConfigFile(p));
    assert.ok(r.ok, `${p.name}: ${r.errors}`);
  }
});

test("config file: units, flags, order and identity", () => {
  const p = samplePlan("pet-with-net", { net: true, persistent: true, vcpus: 4, memoryMiB: 2048 });
  const f = fcConfigFile(p);
  assert.deepEqual(f["boot-source"], { kernel_image_path: p.kernel, initrd_path: p.initrd, boot_args: `${p.cmdline} corral.vsock=1024` });
  assert.deepEqual(f["machine-config"], { vcpu_count: 4, mem_size_mib: 2048, smt: false }, "memory in MiB, not bytes");
  assert.deepEqual(f.drives, [
    { drive_id: "root", path_on_host: p.disks[0]!.path, is_root_device: false, is_read_only: true },
    { drive_id: "data", path_on_host: p.disks[1]!.path, is_root_device: false, is_read_only: false },
  ], "the erofs root first and read-only, no drive the root device");
  assert.deepEqual(f["network-interfaces"], [{ iface_id: "net0", host_dev_name: p.identity.tap, guest_mac: p.identity.mac }]);
  assert.deepEqual(f.vsock, { guest_cid: p.identity.cid, uds_path: "/var/lib/corral/sandboxes/pet-with-net/vsock.sock" });
  const bare = fcConfigFile(samplePlan("cattle-1"));
  assert.deepEqual([bare.drives.map((d) => d.drive_id), bare["network-interfaces"]], [["root"], []]);
});

test("boot args: reboot=k for reboot=t, so that a guest reset ends Firecracker", () => {
  const p = { ...samplePlan("x"), cmdline: "console=ttyS0 panic=-1 reboot=t quiet corral.hostname=x" };
  assert.equal(fcBootArgs(p, 1024), "console=ttyS0 panic=-1 reboot=k quiet corral.hostname=x corral.vsock=1024");
  assert.equal(fcConfigFile(p)["boot-source"].boot_args, fcBootArgs(p, 1024));
  const already = { ...p, cmdline: `${p.cmdline} corral.vsock=9` };
  assert.match(fcBootArgs(already, 1024), / corral\.vsock=9$/, "a port already there is kept");
});

test("the driver: --no-api with the config file it writes, wired to the shim over hybrid vsock", () => {
  const d = "/var/lib/corral/sandboxes/pet-with-net";
  const p = samplePlan("pet-with-net", { net: true, persistent: true });
  const l = firecrackerDriver.render(p, { dir: d, accel: "kvm", runAs: 1234 });
  assert.deepEqual(l, {
    vmm: "firecracker",
    binary: "firecracker",
    args: ["--no-api", "--config-file", `${d}/fc-config.json`],
    wiring: { kind: "hybrid-vsock", uds: `${d}/vsock.sock`, port: 1024 },
    files: { [`${d}/fc-config.json`]: JSON.stringify(fcConfigFile(p), null, 2) },
    guestStop: "reboot",
    identity: p.identity,
  });
  assert.equal(firecrackerDriver.needsKvm, true);
  assert.equal(firecrackerDriver.guestModules, undefined, "virtio-mmio, as QEMU's: no extra modules");
  assert.equal(firecrackerDriver.snapshots, undefined, "no snapshots: the backend refuses them");
});

test("the schema rejects bodies Firecracker would refuse", () => {
  const cases: [string, string, unknown][] = [
    ["memory in bytes under a wrong name", "MachineConfiguration", { vcpu_count: 1, mem_size: 536870912 }],
    ["no mem_size_mib", "MachineConfiguration", { vcpu_count: 1 }],
    ["33 vCPUs", "MachineConfiguration", { vcpu_count: 33, mem_size_mib: 512 }],
    ["memory as a string", "MachineConfiguration", { vcpu_count: 1, mem_size_mib: "512" }],
    ["drive without is_root_device", "Drive", { drive_id: "root", path_on_host: "/x", is_read_only: true }],
    ["virtio drive without is_read_only", "Drive", { drive_id: "root", path_on_host: "/x", is_root_device: false }],
    ["reserved guest_cid 2", "Vsock", { guest_cid: 2, uds_path: "/v.sock" }],
    ["vsock without uds_path", "Vsock", { guest_cid: 100 }],
    ["net without host_dev_name", "NetworkInterface", { iface_id: "net0", guest_mac: "02:00:00:00:00:01" }],
    ["unknown action", "InstanceActionInfo", { action_type: "Start" }],
    ["boot source without kernel", "BootSource", { initrd_path: "/i" }],
    ["config key with underscore", "FullVmConfiguration", { machine_config: { vcpu_count: 1, mem_size_mib: 128 } }],
  ];
  for (const [what, def, body] of cases) assert.equal(check(def, body).ok, false, `accepted: ${what}`);
});

test("plans Firecracker cannot run are refused", () => {
  assert.throws(() => fcConfigFile(samplePlan("big", { vcpus: 33 })), (e: unknown) => e instanceof InvalidArgumentError && /at most 32 vCPUs/.test(e.message));
  const serial: VmPlan = { ...samplePlan("s"), agent: { kind: "virtio-serial", socket: "/s" } };
  assert.throws(() => fcConfigFile(serial), /Firecracker reaches the agent over hybrid vsock/);
});

test("a missing binary is reported by name", () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "corral-nopath-"));
  const saved = process.env["PATH"];
  process.env["PATH"] = empty;
  try {
    const a = firecrackerDriver.available();
    assert.equal(a.ok ? "" : a.reason, "firecracker is not installed (not on PATH; see docs/vm-drivers.md)");
  } finally {
    process.env["PATH"] = saved;
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
