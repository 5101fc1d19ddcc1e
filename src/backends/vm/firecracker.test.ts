// Firecracker API calls and config file from VmPlans, checked against a
// schema written from Firecracker's published swagger description
// (schemas/firecracker.schema.ts). No firecracker binary runs here: see
// docs/vm-drivers.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { fcApiCalls, fcConfigFile, FirecrackerDriver } from "./firecracker.js";
import { fcEndpoints, fcSchema, FC_SCHEMA_ID } from "./schemas/firecracker.schema.js";
import { samplePlan } from "./vmm-fixtures.js";
import { HostError, InvalidArgumentError } from "../../core/errors.js";
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

test("every API call body validates against its endpoint's definition", () => {
  for (const p of plans) {
    for (const c of fcApiCalls(p)) {
      assert.equal(c.method, "PUT");
      const r = check(defFor(c.path), c.body);
      assert.ok(r.ok, `${p.name} ${c.path}: ${r.errors}`);
    }
  }
});

test("the config file validates as a FullVmConfiguration", () => {
  for (const p of plans) {
    const r = check("FullVmConfiguration", fcConfigFile(p));
    assert.ok(r.ok, `${p.name}: ${r.errors}`);
  }
});

test("API calls: order, units, flags and identity", () => {
  const p = samplePlan("pet-with-net", { net: true, persistent: true, vcpus: 4, memoryMiB: 2048 });
  const calls = fcApiCalls(p);
  assert.deepEqual(
    calls.map((c) => c.path),
    ["/boot-source", "/machine-config", "/drives/root", "/drives/data", "/network-interfaces/net0", "/vsock", "/actions"],
  );
  const body = (p2: string) => calls.find((c) => c.path === p2)!.body;
  assert.deepEqual(body("/boot-source"), { kernel_image_path: p.kernel, initrd_path: p.initrd, boot_args: `${p.cmdline} corral.vsock=1024` });
  assert.deepEqual(body("/machine-config"), { vcpu_count: 4, mem_size_mib: 2048, smt: false }, "memory in MiB, not bytes");
  assert.deepEqual(body("/drives/root"), { drive_id: "root", path_on_host: p.disks[0]!.path, is_root_device: false, is_read_only: true });
  assert.deepEqual(body("/drives/data"), { drive_id: "data", path_on_host: p.disks[1]!.path, is_root_device: false, is_read_only: false });
  assert.deepEqual(body("/network-interfaces/net0"), { iface_id: "net0", host_dev_name: p.identity.tap, guest_mac: p.identity.mac });
  assert.deepEqual(body("/vsock"), { guest_cid: p.identity.cid, uds_path: "/var/lib/corral/sandboxes/pet-with-net/vsock.sock" });
  assert.deepEqual(calls.at(-1), { method: "PUT", path: "/actions", body: { action_type: "InstanceStart" } });
  assert.deepEqual(
    fcApiCalls(samplePlan("cattle-1")).map((c) => c.path),
    ["/boot-source", "/machine-config", "/drives/root", "/vsock", "/actions"],
  );
});

test("the config file says what the API calls say", () => {
  for (const p of plans) {
    const f = fcConfigFile(p);
    const calls = fcApiCalls(p);
    const put = (prefix: string) => calls.filter((c) => c.path.startsWith(prefix)).map((c) => c.body);
    assert.deepEqual(put("/boot-source"), [f["boot-source"]]);
    assert.deepEqual(put("/machine-config"), [f["machine-config"]]);
    assert.deepEqual(put("/drives/"), f.drives);
    assert.deepEqual(put("/network-interfaces/"), f["network-interfaces"]);
    assert.deepEqual(put("/vsock"), [f.vsock]);
  }
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
  assert.throws(() => fcApiCalls(serial), /Firecracker reaches the agent over hybrid vsock/);
});

test("a missing binary is a clear HostError", async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "corral-nopath-"));
  const saved = process.env["PATH"];
  process.env["PATH"] = empty;
  try {
    for (const d of [new FirecrackerDriver(), new FirecrackerDriver({ configFile: true })]) {
      const a = d.available();
      assert.match(a.ok ? "" : a.reason, /firecracker is not on PATH \(see docs\/vm-drivers\.md\)/);
      await assert.rejects(d.launch(samplePlan("x"), empty), (e: unknown) => e instanceof HostError && /not on PATH/.test(e.message));
    }
  } finally {
    process.env["PATH"] = saved;
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
