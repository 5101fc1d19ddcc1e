import type { ResolvedSpec } from "../../core/sandbox-spec.js";
import type { NixStoreView } from "../../store/store.js";
import { NIX_PROFILE_BIN } from "../../store/nix/nix-layer.js";
import { defaultSeccompProfile, type SeccompProfile } from "./seccomp.js";

/** Where things are inside every container sandbox. */
export const AGENT_DIR_IN_SANDBOX = "/.corral";
export const AGENT_BIN_IN_SANDBOX = `${AGENT_DIR_IN_SANDBOX}/corral-agent`;
export const RUN_DIR_IN_SANDBOX = "/run/corral";
export const AGENT_SOCKET_IN_SANDBOX = `${RUN_DIR_IN_SANDBOX}/agent.sock`;

/** The agent's PATH for commands whose request sets none (as the agent's own default). */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export const UID_RANGE = 65536;
export const CPU_PERIOD_US = 100_000;

/**
 * Docker's default capability set less NET_RAW (raw sockets) and MKNOD
 * (device nodes cannot be made in a user namespace anyway).
 */
export const CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** The kernel's windows into the host: hidden (masked) or read-only. */
export const MASKED_PATHS = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/interrupts",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/sys/devices/virtual/powercap",
  "/sys/firmware",
];
export const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

export interface OciConfigInput {
  readonly id: string;
  readonly spec: ResolvedSpec;
  readonly hostname: string;
  /** Host directory holding the agent binary (mounted read-only). */
  readonly agentDir: string;
  /** Host directory for the agent socket (mounted read-write). */
  readonly runDir: string;
  /** Host uid/gid that is root inside. */
  readonly uidBase: number;
  /** cgroup path below each hierarchy root, e.g. "corral/abc". */
  readonly cgroupPath: string;
  readonly seccomp?: SeccompProfile;
  /** Host Nix store paths to mount read-only at /nix/store. */
  readonly nixStore?: Pick<NixStoreView, "dir" | "paths" | "writable"> | undefined;
  /**
   * The agent says "ready" on fd 3 (default), a pipe crun passes through
   * (--preserve-fds=1). runsc passes no extra fd: there fd 3 would be the
   * agent's own first descriptor, which the write and close would take.
   */
  readonly readyFd?: boolean;
  /** The cgroup's pids limit (default the spec's). */
  readonly pidsLimit?: number;
  /** Host shares: each bound on `stage` by corral-launch, seen at `target` (after the other mounts). */
  readonly shares?: readonly { readonly stage: string; readonly target: string; readonly readOnly: boolean }[];
  /** network "nat": /etc/hosts and /etc/resolv.conf (the link is moved into the container's namespace once it runs). */
  readonly net?: { readonly hosts: string; readonly resolv: string } | undefined;
}

/**
 * The sandbox's /nix/store: `dir` (a layer's directory of mount points, or
 * the host's whole store) read-only, then each store path read-only at
 * itself, so the sandbox sees exactly those paths and cannot write to any
 * of them. Plain (not recursive) binds: nothing mounted below a host path
 * comes along.
 */
export function nixStoreMounts(v: Pick<NixStoreView, "dir" | "paths" | "writable">): Record<string, unknown>[] {
  // A writable store (its overlay made by corral-launch) is the one bind, read-write.
  const options = ["bind", v.writable ? "rw" : "ro", "nosuid", "nodev"];
  return [
    { destination: "/nix/store", type: "bind", source: v.dir, options },
    ...v.paths.map((p) => ({ destination: p, type: "bind", source: p, options })),
  ];
}

/**
 * A sandbox process's RLIMIT_NOFILE: it may raise its soft limit to the
 * hard one, not past it (no CAP_SYS_RESOURCE). The whole sandbox holds at
 * most pids x NOFILE_HARD fds, and their kernel memory is charged to its
 * memory cgroup (65 k fds took 14 MiB here), so its memory cap bounds
 * them first (test/security/fd-exhaustion.test.ts).
 */
export const NOFILE_HARD = 8192;
export const NOFILE_SOFT = 1024;

/** An OCI runtime-spec 1.0 config.json for a container sandbox. */
export function ociConfig(i: OciConfigInput): Record<string, unknown> {
  const r = i.spec.resources;
  // A Nix template's programs come first, as a Nix profile's do.
  const path = i.nixStore ? `${NIX_PROFILE_BIN}:${DEFAULT_PATH}` : DEFAULT_PATH;
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      // fd 3 is a pipe crun passes through (--preserve-fds=1): the agent
      // writes "ready" on it once it listens, so the host never polls.
      args: [AGENT_BIN_IN_SANDBOX, "--socket", AGENT_SOCKET_IN_SANDBOX, ...(i.readyFd === false ? [] : ["--ready-fd", "3"]), ...(i.nixStore ? ["--path", path] : [])],
      env: [`PATH=${path}`, "HOME=/root"],
      cwd: "/",
      capabilities: {
        bounding: CAPABILITIES,
        effective: CAPABILITIES,
        permitted: CAPABILITIES,
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: NOFILE_HARD, soft: NOFILE_SOFT }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: false },
    hostname: i.hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
      },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: AGENT_DIR_IN_SANDBOX, type: "bind", source: i.agentDir, options: ["rbind", "ro", "nosuid", "nodev"] },
      { destination: RUN_DIR_IN_SANDBOX, type: "bind", source: i.runDir, options: ["rbind", "rw", "nosuid", "nodev", "noexec"] },
      ...(i.nixStore ? nixStoreMounts(i.nixStore) : []),
      ...(i.net
        ? [
            { destination: "/etc/hosts", type: "bind", source: i.net.hosts, options: ["bind", "ro", "nosuid", "nodev", "noexec"] },
            { destination: "/etc/resolv.conf", type: "bind", source: i.net.resolv, options: ["bind", "ro", "nosuid", "nodev", "noexec"] },
          ]
        : []),
      ...(i.shares ?? []).map((sh) => ({ destination: sh.target, type: "bind", source: sh.stage, options: ["bind", sh.readOnly ? "ro" : "rw", "nosuid", "nodev"] })),
    ],
    annotations: { "io.corral.sandbox.id": i.id },
    linux: {
      uidMappings: [{ containerID: 0, hostID: i.uidBase, size: UID_RANGE }],
      gidMappings: [{ containerID: 0, hostID: i.uidBase, size: UID_RANGE }],
      namespaces: ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"].map((type) => ({ type })),
      cgroupsPath: `/${i.cgroupPath}`,
      resources: {
        memory: { limit: r.memory, swap: r.memory },
        cpu: { quota: Math.max(1000, Math.round(r.vcpus * CPU_PERIOD_US)), period: CPU_PERIOD_US },
        pids: { limit: i.pidsLimit ?? r.pids },
      },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: i.seccomp ?? defaultSeccompProfile(),
    },
  };
}
