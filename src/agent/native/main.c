/*
 * corral-agent: options, listeners, the epoll loop, signals and timers.
 * What the agent does is described in agent.h.
 */
#include "agent.h"

int g_ep = -1;
bool g_shutdown;
int64_t g_now;
static int g_sigfd = -1, g_lfd = -1, g_vfd = -1;
static const char *g_sockpath;
static int64_t g_shutdown_deadline, g_listen_resume;
static struct watch g_w_listen = {W_LISTEN, &g_lfd}, g_w_vlisten = {W_LISTEN, &g_vfd};
static struct watch g_w_sig = {W_SIG, NULL};

int ep_ctl(int op, int fd, uint32_t events, struct watch *w)
{
	struct epoll_event ev;
	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = w;
	return epoll_ctl(g_ep, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev);
}

/* Adds (or, with del, removes) every listener to the epoll set. */
static void listeners_ctl(bool del)
{
	if (g_lfd >= 0 && ep_ctl(del ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, g_lfd, EPOLLIN, &g_w_listen) < 0)
		logmsg("corral-agent: epoll listener: %s", strerror(errno));
	if (g_vfd >= 0 && ep_ctl(del ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, g_vfd, EPOLLIN, &g_w_vlisten) < 0)
		logmsg("corral-agent: epoll vsock listener: %s", strerror(errno));
}

static void do_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			logmsg("corral-agent: accept: %s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* level-triggered: back off instead of spinning */
				if (!g_listen_resume)
					listeners_ctl(true);
				g_listen_resume = g_now + 100;
			}
			return;
		}
		if (!conn_new(fd)) {
			logmsg("corral-agent: cannot add a connection: %s", strerror(errno));
			close(fd);
		}
	}
}

static void start_shutdown(int sig)
{
	if (!g_shutdown) {
		g_shutdown = true;
		g_shutdown_deadline = g_now + SHUTDOWN_WAIT_MS;
	}
	for (struct exec *e = g_execs; e; e = e->next)
		kill_group(e->pid, sig);
}

static void handle_signals(void)
{
	struct signalfd_siginfo si[8];
	for (;;) {
		ssize_t n = read(g_sigfd, si, sizeof si);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (size_t k = 0; k < (size_t)n / sizeof si[0]; k++) {
			if (si[k].ssi_signo == SIGTERM || si[k].ssi_signo == SIGINT)
				start_shutdown((int)si[k].ssi_signo);
		}
	}
	reap_all(); /* SIGCHLD coalesces: always look */
}

static void handle_timers(void)
{
	for (struct exec *e = g_execs, *next; e; e = next) {
		next = e->next;
		if (!e->dead && !e->started && e->start_due && g_now >= e->start_due) {
			e->start_due = 0;
			/* false: it failed, e is gone. Still not started: not yet at its
			 * execve, so the errpipe tells from now on. */
			if (!exec_check_started(e, false))
				continue;
			if (!e->started && ep_ctl(EPOLL_CTL_ADD, e->errp_fd, EPOLLIN, &e->w_errp) < 0) {
				/* without the errpipe event we learn about the start at the exit */
				logmsg("corral-agent: epoll add errpipe: %s", strerror(errno));
			}
		}
		if (e->deadline && g_now >= e->deadline) {
			e->deadline = 0;
			e->timed_out = true;
			kill_group(e->pid, SIGKILL);
		}
	}
	for (struct conn *c = g_conns, *next; c; c = next) {
		next = c->next;
		if (c->closing && g_now >= c->close_deadline)
			conn_destroy(c);
	}
	if (g_listen_resume && g_now >= g_listen_resume) {
		g_listen_resume = 0;
		listeners_ctl(false);
	}
}

static int next_timeout(void)
{
	int64_t t = INT64_MAX;
	for (struct exec *e = g_execs; e; e = e->next) {
		if (e->deadline && e->deadline < t)
			t = e->deadline;
		if (!e->started && e->start_due && e->start_due < t)
			t = e->start_due;
	}
	for (struct conn *c = g_conns; c; c = c->next)
		if (c->closing && c->close_deadline < t)
			t = c->close_deadline;
	if (g_listen_resume && g_listen_resume < t)
		t = g_listen_resume;
	if (g_shutdown && g_shutdown_deadline < t)
		t = g_shutdown_deadline;
	if (t == INT64_MAX)
		return -1;
	t -= now_ms();
	return t < 0 ? 0 : t > INT_MAX ? INT_MAX : (int)t;
}

static void end_of_tick(void)
{
	for (struct conn *c = g_conns, *next; c; c = next) {
		next = c->next;
		if (!c->broken && c->needs_input && !c->in_paused && !c->closing)
			conn_process_input(c);
		if (c->broken) {
			logmsg("corral-agent: out of memory, dropping a connection");
			conn_destroy(c);
			continue;
		}
		conn_flush(c);
	}
	while (g_dead_conns) {
		struct conn *c = g_dead_conns;
		g_dead_conns = c->next;
		buf_free(&c->in);
		buf_free(&c->out);
		free(c);
	}
	watch_free_dead();
	while (g_dead_streams) {
		struct stream *s = g_dead_streams;
		g_dead_streams = s->next;
		free(s);
	}
	while (g_dead_execs) {
		struct exec *e = g_dead_execs;
		g_dead_execs = e->next;
		free(e->argv0);
		free(e->cwd);
		free(e);
	}
}

static void dispatch(struct watch *w, uint32_t ev)
{
	switch (w->kind) {
	case W_LISTEN:
		do_accept(*(int *)w->obj);
		break;
	case W_SIG:
		handle_signals();
		break;
	case W_CONN: {
		struct conn *c = w->obj;
		if (c->dead)
			break;
		if (ev & EPOLLERR) {
			conn_destroy(c);
		} else if (ev & (EPOLLIN | EPOLLHUP)) {
			if ((ev & EPOLLHUP) && (c->in_paused || c->closing))
				conn_destroy(c); /* peer gone; it cannot read replies */
			else
				conn_read(c);
		}
		/* EPOLLOUT: flushed at the end of the tick */
		break;
	}
	case W_OUT:
	case W_ERR: {
		struct exec *e = w->obj;
		/* not a pipe paused since epoll_wait returned (by a read earlier in
		 * this batch): its window or the connection is full */
		if (!e->dead && (w->kind == W_ERR ? e->err_reg : e->out_reg))
			exec_read_pipe(e, w->kind == W_ERR);
		break;
	}
	case W_IN: {
		struct exec *e = w->obj;
		if (!e->dead)
			exec_pump_stdin(e);
		break;
	}
	case W_INOTIFY:
		watch_read(w->obj);
		break;
	case W_TCP: {
		struct stream *s = w->obj;
		if (!s->dead)
			tcp_event(s, ev);
		break;
	}
	case W_ERRP: {
		struct exec *e = w->obj;
		if (!e->dead && !e->started && e->errp_fd >= 0)
			exec_check_started(e, false);
		break;
	}
	}
}

/* A listening stream socket of `family` at sa; -1 once the failure is
 * logged (`what` names the address: a path, "vsock port N"). */
static int bind_listen(int family, const void *sa, socklen_t len, const char *what)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		logmsg("corral-agent: socket for %s: %s", what, strerror(errno));
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)sa, len) < 0 || listen(fd, 128) < 0) {
		logmsg("corral-agent: listen on %s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		logmsg("corral-agent: socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	/* create the parent directory (and its parents) if missing */
	char *dir = strdup(path);
	if (!dir)
		return -1;
	for (char *p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = 0;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			logmsg("corral-agent: mkdir %s: %s", dir, strerror(errno));
			free(dir);
			return -1;
		}
		*p = '/';
	}
	free(dir);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			logmsg("corral-agent: %s exists and is not a socket", path);
			return -1;
		}
		if (unlink(path) < 0) {
			logmsg("corral-agent: unlink %s: %s", path, strerror(errno));
			return -1;
		}
	}
	return bind_listen(AF_UNIX, &sa, sizeof sa, path);
}

static int listen_vsock(unsigned int port)
{
	struct corral_sockaddr_vm sa;
	memset(&sa, 0, sizeof sa);
	sa.svm_family = AF_VSOCK;
	sa.svm_cid = VMADDR_CID_ANY;
	sa.svm_port = port;
	char what[32];
	snprintf(what, sizeof what, "vsock port %u", port);
	return bind_listen(AF_VSOCK, &sa, sizeof sa, what);
}

/* A vsock port: 1..2^32-2 (2^32-1 is VMADDR_PORT_ANY). */
static bool parse_port(const char *s, unsigned int *port)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || v == 0 || v >= 0xFFFFFFFFull)
		return false;
	*port = (unsigned int)v;
	return true;
}

static int parse_fd(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

static void usage(void)
{
	logmsg("usage: corral-agent [--socket PATH] [--vsock PORT] [--fd N] [--ready-fd N] [--root DIR] [--path DIRS] [--resolver openat2|walk]");
}

int main(int argc, char **argv)
{
	const char *root = "/";
	int in_fd = -1, ready_fd = -1;
	unsigned int vport = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage();
			return 0;
		}
		if (i + 1 >= argc) {
			usage();
			return 2;
		}
		if (!strcmp(a, "--socket"))
			g_sockpath = argv[++i];
		else if (!strcmp(a, "--vsock") && parse_port(argv[++i], &vport))
			;
		else if (!strcmp(a, "--root"))
			root = argv[++i];
		else if (!strcmp(a, "--path") && strlen(argv[i + 1]) < 4096)
			g_default_path = argv[++i];
		else if (!strcmp(a, "--fd") && (in_fd = parse_fd(argv[++i])) >= 0)
			;
		else if (!strcmp(a, "--ready-fd") && (ready_fd = parse_fd(argv[++i])) >= 0)
			;
		else if (!strcmp(a, "--resolver") && (!strcmp(argv[i + 1], "walk") || !strcmp(argv[i + 1], "openat2")))
			g_resolve_walk = !strcmp(argv[++i], "walk");
		else {
			usage();
			return 2;
		}
	}
	if (!g_sockpath && !vport && in_fd < 0) {
		usage();
		return 2;
	}

	umask(022);
	/* fds 0-2 must be taken so pipes never land there (dup2 in children) */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			break;
	signal(SIGPIPE, SIG_IGN);
	note_ignored_signals();
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0 ||
	    (g_sigfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		logmsg("corral-agent: signalfd: %s", strerror(errno));
		return 1;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		logmsg("corral-agent: PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	/* Undumpable: sandbox code (root in the sandbox's user namespace, as
	 * the agent, but without CAP_SYS_PTRACE) can no longer ptrace the
	 * agent or open /proc/<agent>/mem, environ or fd/ (issue 18: it could
	 * open /proc/1/mem read-write and take over the process holding the
	 * host's connection). Commands are unaffected: execve makes their
	 * memory dumpable again. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		logmsg("corral-agent: PR_SET_DUMPABLE: %s", strerror(errno));
		return 1;
	}
	int ofd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (ofd >= 0) {
		if (write(ofd, "-1000", 5) < 0) { /* needs CAP_SYS_RESOURCE: best effort */ }
		close(ofd);
	}
	g_rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (g_rootfd < 0) {
		logmsg("corral-agent: open root %s: %s", root, strerror(errno));
		return 1;
	}
	probe_openat2();
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0 || ep_ctl(EPOLL_CTL_ADD, g_sigfd, EPOLLIN, &g_w_sig) < 0) {
		logmsg("corral-agent: epoll: %s", strerror(errno));
		return 1;
	}
	g_now = now_ms();
	if (g_sockpath) {
		g_lfd = listen_on(g_sockpath);
		if (g_lfd < 0 || ep_ctl(EPOLL_CTL_ADD, g_lfd, EPOLLIN, &g_w_listen) < 0)
			return 1;
	}
	if (vport) {
		g_vfd = listen_vsock(vport);
		if (g_vfd < 0 || ep_ctl(EPOLL_CTL_ADD, g_vfd, EPOLLIN, &g_w_vlisten) < 0)
			return 1;
	}
	if (in_fd >= 0) {
		int fl = fcntl(in_fd, F_GETFD);
		if (fl < 0 || fcntl(in_fd, F_SETFD, fl | FD_CLOEXEC) < 0 || set_nonblock(in_fd) < 0 || !conn_new(in_fd)) {
			logmsg("corral-agent: --fd %d: %s", in_fd, strerror(errno));
			return 1;
		}
	}
	if (ready_fd >= 0) {
		if (write_full(ready_fd, "ready\n", 6) < 0)
			logmsg("corral-agent: --ready-fd %d: %s", ready_fd, strerror(errno));
		close(ready_fd);
	}
	reap_all();

	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(g_ep, evs, 64, next_timeout());
		if (n < 0 && errno != EINTR) {
			logmsg("corral-agent: epoll_wait: %s", strerror(errno));
			return 1;
		}
		g_now = now_ms();
		for (int k = 0; k < n; k++)
			dispatch(evs[k].data.ptr, evs[k].events);
		handle_timers();
		end_of_tick();
		if (g_shutdown && (!g_execs || g_now >= g_shutdown_deadline))
			break;
	}
	/* best effort: hand out what is buffered, then go */
	for (struct conn *c = g_conns; c; c = c->next)
		if (buf_used(&c->out) && write(c->fd, c->out.p + c->out.off, buf_used(&c->out)) < 0) { /* ignored */ }
	if (g_sockpath)
		unlink(g_sockpath);
	return 0;
}
