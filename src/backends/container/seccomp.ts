/**
 * corral's default seccomp profile: allow by default, deny the system calls
 * that untrusted code has no business making and that have been the way out
 * of containers or into kernel bugs. Only the native architecture is listed,
 * so 32-bit (int 0x80) and x32 entry points, which a denylist keyed on x86_64
 * numbers would not cover, are refused (the filter kills on an unlisted
 * architecture).
 */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: { names: string[]; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[] }[];
}

const EPERM = 1;
const ENOSYS = 38;

/**
 * clone(CLONE_NEWUSER): the one namespace flag that needs no capability,
 * and the way to a CAP_SYS_ADMIN of one's own (CVE-2022-0185 and kin). The
 * other CLONE_NEW* flags need CAP_SYS_ADMIN, which sandboxes do not have.
 */
const CLONE_NEWUSER = 0x10000000;

const DENIED: readonly string[] = [
  // Kernel and module loading, reboot, swap, clock: host-wide effects.
  "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
  "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "acct",
  "syslog", "vhangup", "iopl", "ioperm", "quotactl", "quotactl_fd", "lookup_dcookie", "nfsservctl",
  "uselib", "_sysctl", "create_module", "get_kernel_syms", "query_module",
  // Keyrings are not namespaced.
  "add_key", "request_key", "keyctl",
  // eBPF, perf and userfaultfd: large kernel attack surface, many CVEs.
  "bpf", "perf_event_open", "userfaultfd",
  // io_uring bypasses seccomp for the operations it performs (and many CVEs).
  "io_uring_setup", "io_uring_enter", "io_uring_register",
  // open_by_handle_at: the "shocker" container escape (2014).
  "open_by_handle_at", "name_to_handle_at",
  // Mount API and namespace changes (CVE-2022-0185 needed unshare(CLONE_NEWUSER)).
  "mount", "umount2", "pivot_root", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig",
  "fsmount", "fspick", "unshare", "setns",
  // Cross-process memory access (needs CAP_SYS_PTRACE in Docker's profile).
  "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
];

export function defaultSeccompProfile(arch: string = process.arch): SeccompProfile {
  const architectures = arch === "arm64" ? ["SCMP_ARCH_AARCH64"] : ["SCMP_ARCH_X86_64"];
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures,
    syscalls: [
      { names: [...DENIED], action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      // clone3 passes flags in memory seccomp cannot read: make libc fall back to clone.
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
      // clone with CLONE_NEWUSER (flags are argument 0 on x86_64 and arm64).
      {
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: CLONE_NEWUSER, valueTwo: CLONE_NEWUSER, op: "SCMP_CMP_MASKED_EQ" }],
      },
    ],
  };
}
