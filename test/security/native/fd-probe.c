/*
 * fd-probe: fd exhaustion from inside a sandbox. `fd-probe N` raises its
 * soft RLIMIT_NOFILE to the hard limit, forks N holders, and each opens
 * /dev/null until open() fails, prints "open COUNT ERRNO HARDLIMIT", and
 * holds every fd until its stdin (shared, a pipe from the host) reaches
 * EOF. Built static (musl) by test/security/fd-exhaustion.test.ts: busybox
 * has no way to hold thousands of fds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void hold(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	long n = 0;
	int err = 0;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd < 0) {
			err = errno;
			break;
		}
		n++;
	}
	/* The three stdio fds count against the limit too. */
	printf("open %ld %d %llu\n", n, err, (unsigned long long)rl.rlim_max);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0) {
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	for (int i = 0; i < n; i++) {
		pid_t p = fork();
		if (p == 0)
			hold();
		if (p < 0) {
			printf("fork %d\n", errno);
			fflush(stdout);
			break;
		}
	}
	while (wait(NULL) > 0) {
	}
	return 0;
}
