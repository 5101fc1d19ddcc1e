/*
 * syscall-probe: makes each system call named on the command line with
 * harmless arguments and prints "NAME ok" or "NAME errno=N" per line. Built
 * static (musl) by test/security/seccomp.test.ts and copied into a sandbox:
 * busybox has no way to make an arbitrary system call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_userfaultfd
#error "no userfaultfd number"
#endif

static long call(const char *n) {
	if (!strcmp(n, "keyctl")) return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
	if (!strcmp(n, "add_key")) return syscall(SYS_add_key, "user", "corral-probe", "x", 1, -3);
	if (!strcmp(n, "bpf")) return syscall(SYS_bpf, 0, 0, 0);
	if (!strcmp(n, "userfaultfd")) return syscall(SYS_userfaultfd, 0);
	if (!strcmp(n, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, 0, 0);
	if (!strcmp(n, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, 0, 0);
	if (!strcmp(n, "perf_event_open")) return syscall(SYS_perf_event_open, 0, 0, -1, -1, 0);
	if (!strcmp(n, "unshare_user")) return syscall(SYS_unshare, CLONE_NEWUSER);
	if (!strcmp(n, "clone_newuser")) {
		long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
		if (r == 0) _exit(0);
		if (r > 0) waitpid((pid_t)r, 0, 0);
		return r < 0 ? r : 0;
	}
	if (!strcmp(n, "io_uring_setup")) return syscall(SYS_io_uring_setup, 1, 0);
	/* Outside the allowlist, harmless, and allowed by corral's old denylist. */
	if (!strcmp(n, "get_mempolicy")) return syscall(SYS_get_mempolicy, 0, 0, 0, 0, 0);
	if (!strcmp(n, "set_mempolicy")) return syscall(SYS_set_mempolicy, 0 /* MPOL_DEFAULT */, 0, 0);
	if (!strcmp(n, "personality_exec")) return syscall(SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */);
	if (!strcmp(n, "socket_vsock")) return syscall(SYS_socket, 40 /* AF_VSOCK */, 1 /* SOCK_STREAM */, 0);
	/* Ordinary work. */
	if (!strcmp(n, "getpid")) return syscall(SYS_getpid);
	if (!strcmp(n, "personality_query")) return syscall(SYS_personality, 0xffffffff);
	if (!strcmp(n, "clone_thread_like")) {
		long r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
		if (r == 0) _exit(0);
		if (r > 0) waitpid((pid_t)r, 0, 0);
		return r < 0 ? r : 0;
	}
	if (!strcmp(n, "socket_unix")) return syscall(SYS_socket, 1 /* AF_UNIX */, 1, 0);
	errno = EINVAL;
	return -2;
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		errno = 0;
		long r = call(argv[i]);
		if (r == -2 && errno == EINVAL) printf("%s unknown\n", argv[i]);
		else if (r < 0) printf("%s errno=%d\n", argv[i], errno);
		else printf("%s ok\n", argv[i]);
	}
	return 0;
}
