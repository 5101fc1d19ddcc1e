/**
 * corral's default seccomp profile: an allowlist. Docker's default profile
 * (moby profiles/seccomp/default.json) is the reference: its unconditional
 * list, less what corral has always refused (below), plus the entries it
 * grants to the capabilities sandboxes hold (CAP_SYS_CHROOT: chroot). Any
 * system call not listed fails with ENOSYS, as on a kernel that lacks it:
 * libc and runtimes then fall back (clone3 → clone, io_uring → threads),
 * and a syscall added to a future kernel is refused until listed here.
 *
 * Only the native architecture is listed, so 32-bit (int 0x80) and x32
 * entry points, whose numbers differ, are refused (the filter kills on an
 * unlisted architecture). Names are split by architecture: aarch64 (the
 * asm-generic table) lacks the legacy calls x86_64 keeps (open, stat, fork,
 * ...), and each profile lists only calls its arch has (checked with
 * libseccomp's scmp_sys_resolver; seccomp.test.ts checks the split).
 */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: { names: string[]; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[] }[];
}

export const EPERM = 1;
export const ENOSYS = 38;

/** Docker's unconditional allowlist, as calls both x86_64 and aarch64 have. */
const COMMON: readonly string[] = [
  "accept", "accept4", "bind", "brk", "capget", "capset", "chdir", "chroot", "clock_getres", "clock_gettime",
  "clock_nanosleep", "close", "close_range", "connect", "copy_file_range", "dup", "dup3", "epoll_create1",
  "epoll_ctl", "epoll_pwait", "epoll_pwait2", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
  "faccessat2", "fadvise64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat",
  "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync",
  "ftruncate", "futex", "futex_waitv", "getcpu", "getcwd", "getdents64", "getegid", "geteuid", "getgid", "getgroups",
  "getitimer", "getpeername", "getpgid", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresuid",
  "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday",
  "getuid", "getxattr", "inotify_add_watch", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy",
  "io_getevents", "io_pgetevents", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "kill", "landlock_add_rule",
  "landlock_create_ruleset", "landlock_restrict_self", "lgetxattr", "linkat", "listen", "listxattr", "llistxattr",
  "lremovexattr", "lseek", "lsetxattr", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdirat",
  "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
  "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
  "munlockall", "munmap", "nanosleep", "newfstatat", "openat", "openat2", "pidfd_open", "pidfd_send_signal", "pipe2",
  "pkey_alloc", "pkey_free", "pkey_mprotect", "ppoll", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
  "process_mrelease", "pselect6", "ptrace", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlinkat",
  "readv", "recvfrom", "recvmmsg", "recvmsg", "remap_file_pages", "removexattr", "renameat", "renameat2",
  "restart_syscall", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
  "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
  "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
  "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "semctl",
  "semget", "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsuid", "setgid",
  "setgroups", "setitimer", "setpgid", "setpriority", "setregid", "setresgid", "setresuid", "setreuid", "setrlimit",
  "set_robust_list", "setsid", "setsockopt", "set_tid_address", "setuid", "setxattr", "shmat", "shmctl", "shmdt",
  "shmget", "shutdown", "sigaltstack", "signalfd4", "socketpair", "splice", "statfs", "statx", "symlinkat", "sync",
  "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "timer_create", "timer_delete", "timer_getoverrun",
  "timer_gettime", "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill",
  "truncate", "umask", "uname", "unlinkat", "utimensat", "vmsplice", "wait4", "waitid", "write", "writev",
];

/** x86_64's legacy calls (aarch64 has only their *at / 2 forms) and its own (arch_prctl, modify_ldt). */
const X86_64_ONLY: readonly string[] = [
  "access", "alarm", "arch_prctl", "chmod", "chown", "creat", "dup2", "epoll_create", "epoll_ctl_old", "epoll_wait",
  "epoll_wait_old", "eventfd", "fork", "futimesat", "getdents", "getpgrp", "get_thread_area", "inotify_init", "lchown",
  "link", "lstat", "mkdir", "mknod", "modify_ldt", "open", "pause", "pipe", "poll", "readlink", "rename", "rmdir",
  "select", "set_thread_area", "signalfd", "stat", "symlink", "time", "unlink", "utime", "utimes", "vfork",
];

/**
 * Refused with EPERM (so the error reads "Operation not permitted", not
 * "Function not implemented"): what corral refused under its old denylist
 * and Docker refuses without CAP_SYS_ADMIN and kin.
 */
export const DENIED: readonly string[] = [
  // Kernel and module loading, reboot, swap, clock: host-wide effects.
  "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
  "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "acct",
  "syslog", "vhangup", "iopl", "ioperm", "quotactl", "quotactl_fd", "lookup_dcookie", "nfsservctl",
  "uselib", "_sysctl", "create_module", "get_kernel_syms", "query_module", "sethostname", "setdomainname",
  // Keyrings are not namespaced (CVE-2016-0728 and kin).
  "add_key", "request_key", "keyctl",
  // eBPF, perf and userfaultfd: large kernel attack surface, many CVEs
  // (userfaultfd: the race-widener of CVE-2021-22555-style exploits).
  "bpf", "perf_event_open", "userfaultfd", "fanotify_init",
  // io_uring bypasses seccomp for the operations it performs (and many CVEs).
  "io_uring_setup", "io_uring_enter", "io_uring_register",
  // open_by_handle_at: the "shocker" container escape (2014).
  "open_by_handle_at", "name_to_handle_at",
  // Mount API and namespace changes (CVE-2022-0185 needed unshare(CLONE_NEWUSER)).
  "mount", "umount2", "pivot_root", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig",
  "fsmount", "fspick", "unshare", "setns",
  // Cross-process memory access (needs CAP_SYS_PTRACE in Docker's profile).
  "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
];

/**
 * Every CLONE_NEW* flag clone may not carry (Docker's mask 0x7E020000):
 * NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. NEWUSER is the
 * one that needs no capability, and the way to a CAP_SYS_ADMIN of one's
 * own (CVE-2022-0185 and kin).
 */
export const CLONE_NS_FLAGS = 0x7e020000;

/** personality(2) values Docker allows: PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE (and with UNAME26), query. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

const AF_VSOCK = 40;

/** The single bits of CLONE_NS_FLAGS. */
function nsFlags(): number[] {
  const bits: number[] = [];
  for (let b = 0; b < 31; b++) if (CLONE_NS_FLAGS & (1 << b)) bits.push(1 << b);
  return bits;
}

export function seccompArchitecture(arch: string): "SCMP_ARCH_AARCH64" | "SCMP_ARCH_X86_64" {
  if (arch === "arm64") return "SCMP_ARCH_AARCH64";
  if (arch === "x64") return "SCMP_ARCH_X86_64";
  throw new Error(`no seccomp profile for architecture ${arch}`);
}

export function defaultSeccompProfile(arch: string = process.arch): SeccompProfile {
  const architecture = seccompArchitecture(arch);
  const allowed = architecture === "SCMP_ARCH_X86_64" ? [...COMMON, ...X86_64_ONLY] : [...COMMON];
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: ENOSYS,
    architectures: [architecture],
    syscalls: [
      { names: allowed, action: "SCMP_ACT_ALLOW" },
      { names: [...DENIED], action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      // clone3 passes flags in memory seccomp cannot read: make libc fall back to clone.
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
      // clone without namespace flags (argument 0 on x86_64 and aarch64);
      // with one, EPERM (one rule per flag: "any of" is no single comparison).
      { names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: CLONE_NS_FLAGS, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] },
      ...nsFlags().map((flag) => ({ names: ["clone"], action: "SCMP_ACT_ERRNO", errnoRet: EPERM, args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }] })),
      // socket, but not AF_VSOCK (a path to the host's vsock services).
      { names: ["socket"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_NE" }] },
      ...PERSONALITIES.map((value) => ({ names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value, op: "SCMP_CMP_EQ" }] })),
    ],
  };
}
