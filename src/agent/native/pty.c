/*
 * corral-agent: terminals. An exec with "pty" runs on the slave of a new
 * pseudo-terminal (spawn.c makes it the controlling terminal of the
 * child's session); the master is its stdout and stdin (exec.c). The
 * resize op sets the window size, and the kernel sends SIGWINCH to the
 * terminal's foreground process group.
 */
#include "agent.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* The slave of master m: TIOCGPTPEER opens it through the master's own
 * devpts instance (Linux 4.13+), whatever is mounted at /dev/pts now; a
 * sandbox cannot swap in another file there between the two calls (the
 * race ptsname() + open() has). Older kernels, and runtimes without it
 * (gVisor has no TIOCGPTPEER), go by the name the master gives. */
static int open_slave(int m)
{
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s >= 0)
		return s;
	unsigned int n;
	if (ioctl(m, TIOCGPTN, &n) < 0)
		return -1;
	char name[32];
	snprintf(name, sizeof name, "/dev/pts/%u", n);
	return open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
}

/* A new pseudo-terminal of rows x cols: its master (non-blocking) and
 * slave, both close-on-exec. 0, or the errno (nothing left open). */
int pty_open(int64_t rows, int64_t cols, int *master, int *slave)
{
	int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return errno;
	int unlock = 0, s = -1;
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCSWINSZ, &ws) < 0 || (s = open_slave(m)) < 0) {
		int err = errno;
		close(m);
		return err;
	}
	*master = m;
	*slave = s;
	return 0;
}

/* resize: {"target": exec or attach stream id | "pid": P, "rows", "cols"}
 * -> ok; ESRCH for no such exec, ENOTTY for one without a pty. */
void op_resize(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_RESIZE, d, &r))
		return;
	struct exec *e = find_exec_target(c, &r);
	if (!e) {
		send_error(c, id, ESRCH, "no such exec", NULL);
		return;
	}
	int fd = e->in_fd >= 0 ? e->in_fd : e->out_fd;
	if (!e->pty || fd < 0) {
		send_error(c, id, ENOTTY, "the exec has no terminal", NULL);
		return;
	}
	struct winsize ws = {.ws_row = (unsigned short)r.rows, .ws_col = (unsigned short)r.cols};
	send_ok_or_error(c, id, ioctl(fd, TIOCSWINSZ, &ws) < 0 ? errno : 0, "cannot resize the terminal", NULL);
}
