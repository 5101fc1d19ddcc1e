/**
 * JSON Schema (2020-12) for the part of Cloud Hypervisor's `VmConfig` that
 * corral sends to `PUT /api/v1/vm.create`. Written by hand from the
 * project's published API description, vmm/src/api/openapi/cloud-hypervisor.yaml
 * (OpenAPI 3.0.1, `info.version` 0.3.0, as on the main branch at commit
 * 00f68228); not a copy.
 *
 * What the document says, in short:
 * - `payload` is the only required member; in it `kernel`, `initramfs`,
 *   `cmdline` are strings (host paths, and the command line). Releases from
 *   before `payload` existed took these at the top level; they are not
 *   covered.
 * - `cpus` needs both `boot_vcpus` and `max_vcpus`, integers >= 1.
 * - `memory.size` is required, an int64 count of BYTES (the CLI's `size=512M`
 *   is the same value written with a suffix).
 * - a `disks` entry has `path` (string), `readonly` (boolean, default
 *   false) and an optional string `id`; none of its members is required.
 * - a `net` entry has `tap`, `mac`, `id` strings; none required.
 * - `vsock` requires `cid` (int64, minimum 3: 0-2 are reserved) and
 *   `socket`, the host unix socket that proxies the guest's vsock (the
 *   hybrid vsock: `CONNECT <port>\n` on it reaches the guest's port).
 * - `serial` and `console` require `mode`, one of Off, Pty, Tty, File,
 *   Socket, Null (capitalised); `file` is the path used in File mode.
 *
 * Each object lists every member name the document defines, so a
 * misspelled member fails here instead of being ignored by the VMM.
 */
const int = { type: "integer" } as const;
const bool = { type: "boolean" } as const;
const str = { type: "string" } as const;
/** Members corral never sends: named (so they are not "additional"), not described. */
const opaque = (...names: string[]) => Object.fromEntries(names.map((n) => [n, {}]));

const consoleMode = { enum: ["Off", "Pty", "Tty", "File", "Socket", "Null"] } as const;

export const chVmConfigSchema = {
  $id: "corral:cloud-hypervisor/VmConfig",
  type: "object",
  required: ["payload"],
  additionalProperties: false,
  properties: {
    ...opaque("rate_limit_groups", "rng", "balloon", "fs", "generic_vhost_user", "pmem", "debug_console", "devices"),
    ...opaque("user_devices", "vdpa", "numa", "rtc", "pci_segments", "platform", "tpm", "landlock_rules"),
    iommu: bool,
    watchdog: bool,
    pvpanic: bool,
    landlock_enable: bool,
    payload: {
      type: "object",
      additionalProperties: false,
      properties: { firmware: str, kernel: str, cmdline: str, initramfs: str, igvm: str, host_data: str },
    },
    cpus: {
      type: "object",
      required: ["boot_vcpus", "max_vcpus"],
      additionalProperties: false,
      properties: {
        boot_vcpus: { type: "integer", minimum: 1 },
        max_vcpus: { type: "integer", minimum: 1 },
        ...opaque("topology", "affinity", "features", "core_scheduling"),
        kvm_hyperv: bool,
        max_phys_bits: int,
        nested: bool,
      },
    },
    memory: {
      type: "object",
      required: ["size"],
      additionalProperties: false,
      properties: {
        size: { type: "integer", minimum: 1 },
        hotplug_size: int,
        hotplugged_size: int,
        mergeable: bool,
        hotplug_method: str,
        shared: bool,
        hugepages: bool,
        hugepage_size: int,
        prefault: bool,
        reserve: bool,
        thp: bool,
        zones: { type: "array" },
      },
    },
    disks: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        properties: {
          path: str,
          readonly: bool,
          direct: bool,
          iommu: bool,
          num_queues: int,
          queue_size: int,
          vhost_user: bool,
          vhost_socket: str,
          rate_limiter_config: { type: "object" },
          pci_segment: int,
          pci_device_id: int,
          id: str,
          serial: str,
          rate_limit_group: str,
          queue_affinity: { type: "array" },
          backing_files: bool,
          sparse: bool,
          image_type: { enum: ["FlatVmdk", "FixedVhd", "Qcow2", "Raw", "Vhdx", "Unknown"] },
          lock_granularity: { enum: ["ByteRange", "Full"] },
        },
      },
    },
    net: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        properties: {
          tap: str,
          ip: str,
          mask: str,
          mac: str,
          host_mac: str,
          mtu: int,
          iommu: bool,
          num_queues: int,
          queue_size: int,
          vhost_user: bool,
          vhost_socket: str,
          vhost_mode: str,
          id: str,
          pci_segment: int,
          pci_device_id: int,
          rate_limiter_config: { type: "object" },
          offload_tso: bool,
          offload_ufo: bool,
          offload_csum: bool,
        },
      },
    },
    vsock: {
      type: "object",
      required: ["cid", "socket"],
      additionalProperties: false,
      properties: {
        cid: { type: "integer", minimum: 3 },
        socket: str,
        iommu: bool,
        pci_segment: int,
        pci_device_id: int,
        id: str,
      },
    },
    serial: {
      type: "object",
      required: ["mode"],
      additionalProperties: false,
      properties: { file: str, socket: str, mode: consoleMode },
    },
    console: {
      type: "object",
      required: ["mode"],
      additionalProperties: false,
      properties: { file: str, socket: str, mode: consoleMode, iommu: bool, id: str, pci_segment: int, pci_device_id: int },
    },
  },
} as const;
