/*
 * corral-agent: a command's child, from clone() to execve().
 */
#include "agent.h"

/* In the child: execvp semantics, but searching the PATH of the new
 * environment. Returns the errno to report. */
static int child_execvp(char **argv, char **envp, const char *path, char **shv)
{
	const char *file = argv[0];
	if (!*file)
		return ENOENT;
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		int err = errno;
		if (err == ENOEXEC) {
			shv[1] = (char *)file;
			execve("/bin/sh", shv, envp);
		}
		return err;
	}
	size_t fl = strlen(file);
	if (fl > NAME_MAX)
		return ENAMETOOLONG;
	char b[PATH_MAX];
	bool eacces = false;
	for (const char *p = path;; ) {
		const char *z = strchrnul(p, ':');
		size_t l = (size_t)(z - p);
		if (l + 1 + fl + 1 <= sizeof b) {
			memcpy(b, p, l);
			if (l)
				b[l++] = '/';
			memcpy(b + l, file, fl + 1);
			execve(b, argv, envp);
			switch (errno) {
			case EACCES:
				eacces = true;
				break;
			case ENOENT: case ENOTDIR: case ESTALE: case ENODEV:
			case ETIMEDOUT: case ELOOP: case ENAMETOOLONG:
				break;
			case ENOEXEC:
				shv[1] = b;
				execve("/bin/sh", shv, envp);
				return ENOEXEC;
			default:
				return errno;
			}
		}
		if (!*z)
			break;
		p = z + 1;
	}
	return eacces ? EACCES : ENOENT;
}

static void child_fail(int fd, int stage, int err)
{
	int rep[2] = {stage, err};
	ssize_t w;
	do
		w = write(fd, rep, sizeof rep);
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* The signals the agent ignores (SIGPIPE, and any it was started with
 * ignored: those survive execve): the only dispositions a child must reset,
 * as the agent catches none. One sigaction each instead of 64 per command. */
static int g_ignored[64];
static int g_n_ignored;

void note_ignored_signals(void)
{
	for (int s = 1; s < 65; s++) {
		struct sigaction old;
		if (sigaction(s, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN && g_n_ignored < 64)
			g_ignored[g_n_ignored++] = s;
	}
}

/* A command's oom_score_adj: the OOM killer takes commands before the
 * agent. The agent's own -1000 (main.c) needs CAP_SYS_RESOURCE in the
 * host's user namespace, which it has in a microVM's guest but not in a
 * container, where it stays 0; there a sandbox whose memory is in kernel
 * objects (65 k open fds took 14 MiB; the holders have no RSS) had the
 * agent, at 128 KiB the largest process, killed, and the sandbox died
 * with it (test/security/fd-exhaustion.test.ts). 500 adds half the memory
 * cgroup's limit to a command's score (8 MiB at the 16 MiB minimum,
 * 60 x the agent's RSS). Raising needs no privilege; a command
 * may lower itself back to 0 and so risk only its own sandbox. On a
 * host-wide OOM sandbox commands go before host processes, as they
 * should. */
#define CHILD_OOM_SCORE_ADJ "500"

/* The child, on its own stack: default signal dispositions and mask, a
 * session of its own, oom_score_adj CHILD_OOM_SCORE_ADJ, the pipes on 0-2,
 * then execve. Only system calls here: the memory is the agent's. */
static int spawn_main(void *p)
{
	struct spawn_args *a = p;
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int i = 0; i < g_n_ignored; i++)
		sigaction(g_ignored[i], &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (a->ctty && ioctl(a->in, TIOCSCTTY, 0) < 0)
		child_fail(a->rep, 1, errno);
	int ofd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (ofd >= 0) {
		if (write(ofd, CHILD_OOM_SCORE_ADJ, sizeof CHILD_OOM_SCORE_ADJ - 1) < 0) { /* ignored */ }
		close(ofd);
	}
	if (dup2(a->in, 0) < 0 || dup2(a->out, 1) < 0 || dup2(a->err, 2) < 0)
		child_fail(a->rep, 1, errno);
	if (chdir(a->cwd) < 0)
		child_fail(a->rep, 0, errno);
	child_fail(a->rep, 1, child_execvp(a->argv, a->envp, a->path, a->shv));
	return 127;
}

/* Starts a command's child like posix_spawn does: clone(CLONE_VM |
 * CLONE_VFORK), so the agent's page tables are not copied and none of its
 * pages is faulted in copy-on-write before the child's execve; the agent
 * waits (CLONE_VFORK) only until that execve or the child's exit. fork()
 * cost ~0.25 ms more per command in a container on the machines we measure
 * on, and more under TCG in a microVM. Every signal is blocked around the
 * clone so no handler of the agent's runs on the child's stack. */
pid_t spawn_child(struct spawn_args *a)
{
	static char stack[128 * 1024] __attribute__((aligned(16)));
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &a->oldmask);
	pid_t pid = clone(spawn_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
	int err = errno;
	sigprocmask(SIG_SETMASK, &a->oldmask, NULL);
	errno = err;
	return pid;
}
