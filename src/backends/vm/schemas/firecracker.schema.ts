/**
 * JSON Schema (2020-12) for the Firecracker API bodies corral sends, and
 * for the `--config-file` document. Written by hand from the project's
 * published API description, src/firecracker/swagger/firecracker.yaml
 * (Swagger 2.0, `info.version` 1.17.0-dev, commit 004d9353); not a copy.
 *
 * What the document says, in short:
 * - `PUT /boot-source` (BootSource): `kernel_image_path` required; optional
 *   `initrd_path` and `boot_args` (the command line). All strings.
 * - `PUT /machine-config` (MachineConfiguration): `vcpu_count` (integer,
 *   1..32) and `mem_size_mib` (integer, MEBIBYTES) are required; `smt`,
 *   `track_dirty_pages` booleans; `huge_pages` None, Transparent or 2M.
 * - `PUT /drives/{drive_id}` (Drive): `drive_id` (string) and
 *   `is_root_device` (boolean) are required; a virtio-block drive also
 *   needs `path_on_host` and `is_read_only`. At most one drive is the root
 *   device. `cache_type` is Unsafe or Writeback, `io_engine` Sync or Async.
 * - `PUT /network-interfaces/{iface_id}` (NetworkInterface): `iface_id` and
 *   `host_dev_name` (the tap) are required; `guest_mac` optional; `mtu`
 *   68..65535.
 * - `PUT /vsock` (Vsock): `guest_cid` (integer >= 3) and `uds_path`
 *   required. Host-initiated connections go through `uds_path` with
 *   `CONNECT <port>\n`; guest-initiated ones to `<uds_path>_<port>`.
 * - `PUT /logger` (Logger): all optional; `level` one of Error, Warning,
 *   Info, Debug, Trace, Off; `log_path` a file or named pipe.
 * - `PUT /actions` (InstanceActionInfo): `action_type` required, one of
 *   FlushMetrics, InstanceStart, SendCtrlAltDel.
 * - The config file (FullVmConfiguration) uses the same bodies under the
 *   keys `boot-source`, `machine-config`, `drives` (array),
 *   `network-interfaces` (array), `vsock`, `logger`, ...
 *
 * Objects list every member name the document defines, so a misspelled
 * member fails here instead of at the VMM.
 */
const str = { type: "string" } as const;
const bool = { type: "boolean" } as const;
const rateLimiter = { type: "object" } as const;

export const FC_SCHEMA_ID = "corral:firecracker";

export const fcSchema = {
  $id: FC_SCHEMA_ID,
  $defs: {
    BootSource: {
      type: "object",
      required: ["kernel_image_path"],
      additionalProperties: false,
      properties: { kernel_image_path: str, initrd_path: str, boot_args: str },
    },
    MachineConfiguration: {
      type: "object",
      required: ["vcpu_count", "mem_size_mib"],
      additionalProperties: false,
      properties: {
        vcpu_count: { type: "integer", minimum: 1, maximum: 32 },
        mem_size_mib: { type: "integer", minimum: 1 },
        smt: bool,
        track_dirty_pages: bool,
        cpu_template: { enum: ["C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None"] },
        huge_pages: { enum: ["None", "Transparent", "2M"] },
      },
    },
    Drive: {
      type: "object",
      required: ["drive_id", "is_root_device"],
      additionalProperties: false,
      properties: {
        drive_id: str,
        partuuid: str,
        is_root_device: bool,
        cache_type: { enum: ["Unsafe", "Writeback"] },
        is_read_only: bool,
        path_on_host: str,
        rate_limiter: rateLimiter,
        io_engine: { enum: ["Sync", "Async"] },
        socket: str,
      },
      // virtio-block (path and read-only flag; what corral uses) or
      // vhost-user-block (a socket), not both
      oneOf: [{ required: ["path_on_host", "is_read_only"] }, { required: ["socket"] }],
    },
    NetworkInterface: {
      type: "object",
      required: ["iface_id", "host_dev_name"],
      additionalProperties: false,
      properties: {
        iface_id: str,
        host_dev_name: str,
        guest_mac: str,
        mtu: { type: "integer", minimum: 68, maximum: 65535 },
        rx_rate_limiter: rateLimiter,
        tx_rate_limiter: rateLimiter,
      },
    },
    Vsock: {
      type: "object",
      required: ["guest_cid", "uds_path"],
      additionalProperties: false,
      properties: { guest_cid: { type: "integer", minimum: 3 }, uds_path: str, vsock_id: str },
    },
    Logger: {
      type: "object",
      additionalProperties: false,
      properties: {
        level: { enum: ["Error", "Warning", "Info", "Debug", "Trace", "Off"] },
        log_path: str,
        show_level: bool,
        show_log_origin: bool,
        module: str,
      },
    },
    InstanceActionInfo: {
      type: "object",
      required: ["action_type"],
      additionalProperties: false,
      properties: { action_type: { enum: ["FlushMetrics", "InstanceStart", "SendCtrlAltDel"] } },
    },
    FullVmConfiguration: {
      type: "object",
      additionalProperties: false,
      properties: {
        balloon: { type: "object" },
        drives: { type: "array", items: { $ref: "#/$defs/Drive" } },
        "boot-source": { $ref: "#/$defs/BootSource" },
        "cpu-config": { type: "object" },
        logger: { $ref: "#/$defs/Logger" },
        "machine-config": { $ref: "#/$defs/MachineConfiguration" },
        metrics: { type: "object" },
        "memory-hotplug": { type: "object" },
        "mmds-config": { type: "object" },
        "network-interfaces": { type: "array", items: { $ref: "#/$defs/NetworkInterface" } },
        pmem: { type: "array" },
        vsock: { $ref: "#/$defs/Vsock" },
        entropy: { type: "object" },
      },
    },
  },
} as const;

/** Which body each API path takes (`{id}` segments matched by pattern). */
export const fcEndpoints: readonly { readonly path: RegExp; readonly def: keyof typeof fcSchema.$defs }[] = [
  { path: /^\/boot-source$/, def: "BootSource" },
  { path: /^\/machine-config$/, def: "MachineConfiguration" },
  { path: /^\/drives\/[^/]+$/, def: "Drive" },
  { path: /^\/network-interfaces\/[^/]+$/, def: "NetworkInterface" },
  { path: /^\/vsock$/, def: "Vsock" },
  { path: /^\/logger$/, def: "Logger" },
  { path: /^\/actions$/, def: "InstanceActionInfo" },
];
