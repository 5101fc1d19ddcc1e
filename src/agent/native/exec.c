/*
 * corral-agent: execs. The exec, stdin and signal ops; a command's pipes,
 * their backpressure, its start and its exit.
 */
#include "agent.h"

/* PATH for commands whose request sets none: DEFAULT_PATH unless --path */
const char *g_default_path = DEFAULT_PATH;
struct exec *g_execs, *g_dead_execs;

int kill_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) == 0)
		return 0;
	/* the child may not have called setsid() yet */
	if (errno == ESRCH && kill(pid, sig) == 0)
		return 0;
	return errno;
}

/* Registers or unregisters the output pipes according to backpressure.
 * Paused pipes are removed from epoll (a hung-up pipe would otherwise keep
 * reporting EPOLLHUP). */
void exec_update_pipes(struct exec *e)
{
	bool want = e->started && !exec_readers_paused(e);
	int *fds[2] = {&e->out_fd, &e->err_fd};
	bool *regs[2] = {&e->out_reg, &e->err_reg};
	struct watch *ws[2] = {&e->w_out, &e->w_err};
	for (int k = 0; k < 2; k++) {
		if (*fds[k] < 0 || want == *regs[k])
			continue;
		if (want) {
			if (ep_ctl(EPOLL_CTL_ADD, *fds[k], EPOLLIN, ws[k]) < 0) {
				logmsg("corral-agent: epoll add pipe: %s", strerror(errno));
				xclose(fds[k]); /* output lost rather than a stuck exec */
				continue;
			}
		} else {
			ep_ctl(EPOLL_CTL_DEL, *fds[k], 0, NULL);
		}
		*regs[k] = want;
	}
}

void conn_set_pipes_paused(struct conn *c, bool paused)
{
	if (c->pipes_paused == paused)
		return;
	c->pipes_paused = paused;
	/* every exec: c may be the starter's or an attach stream's connection */
	for (struct exec *e = g_execs; e; e = e->next)
		exec_update_pipes(e);
	watch_update_conn(c);
	tcp_update_conn(c);
}

static void exec_close_pipe(struct exec *e, int which)
{
	int *fd = which ? &e->err_fd : &e->out_fd;
	bool *reg = which ? &e->err_reg : &e->out_reg;
	if (*reg)
		ep_ctl(EPOLL_CTL_DEL, *fd, 0, NULL);
	*reg = false;
	xclose(fd);
}

void conn_unblock(struct conn *c)
{
	c->in_blocker = NULL;
	c->in_tcp_blocker = NULL;
	c->in_paused = false;
	c->needs_input = true; /* frames already read are parsed at the end of the tick */
}

/* Connections waiting for e's stdin queue to drain read again. */
static void unblock_for(struct exec *e)
{
	for (struct conn *c = g_conns; c; c = c->next)
		if (c->in_blocker == e)
			conn_unblock(c);
}

void exec_close_stdin(struct exec *e)
{
	if (e->in_reg)
		ep_ctl(EPOLL_CTL_DEL, e->in_fd, 0, NULL);
	e->in_reg = false;
	xclose(&e->in_fd);
	buf_free(&e->in_pend);
	unblock_for(e);
}

/* Writes queued stdin; closes it at EOF or when the child closed its end. */
void exec_pump_stdin(struct exec *e)
{
	if (e->in_fd < 0)
		return;
	while (buf_used(&e->in_pend)) {
		ssize_t w = write(e->in_fd, e->in_pend.p + e->in_pend.off, buf_used(&e->in_pend));
		if (w > 0) {
			e->in_pend.off += (size_t)w;
			e->in_acked += w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		exec_close_stdin(e); /* EPIPE: the child does not read any more */
		return;
	}
	buf_settle(&e->in_pend);
	/* per-exec flow control: the host may send `window` bytes of stdin
	 * unacknowledged; acknowledge what the child has taken */
	if (e->window && usable(e->conn) && e->in_acked > 0 && (e->in_acked >= (int64_t)CHUNK || !buf_used(&e->in_pend))) {
		hb_begin("credit", e->id);
		hb_kint("bytes", e->in_acked);
		conn_send(e->conn, NULL, 0);
		e->in_acked = 0;
	}
	if (!buf_used(&e->in_pend) && e->stdin_eof) {
		exec_close_stdin(e);
		return;
	}
	bool want = buf_used(&e->in_pend) > 0;
	if (want != e->in_reg) {
		if (ep_ctl(want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, e->in_fd, EPOLLOUT, &e->w_in) < 0 && want) {
			logmsg("corral-agent: epoll add stdin: %s", strerror(errno));
			exec_close_stdin(e);
			return;
		}
		e->in_reg = want;
	}
	if (buf_used(&e->in_pend) < STDIN_HIGH / 4)
		unblock_for(e);
}

/* Frees the exec's fds and moves it to the graveyard (freed after the tick). */
static void exec_destroy(struct exec *e)
{
	unblock_for(e);
	exec_free_extras(e);
	exec_close_stdin(e);
	exec_close_pipe(e, 0);
	exec_close_pipe(e, 1);
	if (e->errp_fd >= 0)
		ep_ctl(EPOLL_CTL_DEL, e->errp_fd, 0, NULL);
	xclose(&e->errp_fd);
	for (struct exec **pp = &g_execs; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	e->dead = true;
	e->conn = NULL;
	e->next = g_dead_execs;
	g_dead_execs = e;
}

/* Reads one chunk of an output pipe; 0 = EOF or error (pipe closed). */
int exec_read_pipe(struct exec *e, int which)
{
	int fd = which ? e->err_fd : e->out_fd;
	if (fd < 0)
		return 0;
	ssize_t n;
	/* per-exec flow control: read no more than the starter's window has
	 * room for (the drain at exit, with the window full, reads CHUNK) */
	bool windowed = e->window && !e->detached && usable(e->conn);
	size_t max = CHUNK;
	if (windowed && e->unacked < e->window && e->window - e->unacked < (int64_t)CHUNK)
		max = (size_t)(e->window - e->unacked);
	if (e->keepalive || e->detached || e->attaches) {
		/* the ring and attach streams (ring.c) */
		static char chunk[CHUNK];
		do
			n = read(fd, chunk, max);
		while (n < 0 && errno == EINTR);
		if (n > 0)
			exec_output(e, which, chunk, (size_t)n);
	} else if (usable(e->conn)) {
		n = frame_read(e->conn, which ? "stderr" : "stdout", e->id, fd, max);
		if (n > 0 && buf_used(&e->conn->out) > OUT_HIGH)
			conn_set_pipes_paused(e->conn, true);
	} else {
		char sink[8192];
		do
			n = read(fd, sink, sizeof sink);
		while (n < 0 && errno == EINTR);
	}
	if (n > 0 && windowed) {
		e->unacked += n;
		if (e->unacked >= e->window)
			exec_update_pipes(e);
	}
	if (n > 0)
		return (int)n;
	if (n < 0 && errno == EAGAIN)
		return -1;
	exec_close_pipe(e, which);
	return 0;
}

/* The errpipe told us whether execve worked. Returns false if it failed
 * (the exec is then destroyed and an error was sent). */
bool exec_check_started(struct exec *e, bool final)
{
	int rep[2];
	ssize_t n;
	do
		n = read(e->errp_fd, rep, sizeof rep);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN && !final)
		return true; /* spurious wakeup */
	if (n == (ssize_t)sizeof rep) {
		if (rep[0] == 0)
			send_error_why(e->conn, e->id, rep[1], "cannot change directory to", e->cwd);
		else
			send_error_why(e->conn, e->id, rep[1], "cannot execute", e->argv0);
		exec_destroy(e);
		return false;
	}
	/* EOF: execve succeeded (or the child died before it; the exit tells) */
	ep_ctl(EPOLL_CTL_DEL, e->errp_fd, 0, NULL);
	xclose(&e->errp_fd);
	e->started = true;
	free(e->argv0);
	free(e->cwd);
	e->argv0 = e->cwd = NULL;
	hb_begin("started", e->id);
	hb_kint("pid", e->pid);
	if (e->window)
		hb_kint("window", e->window);
	conn_send(e->conn, NULL, 0);
	exec_update_pipes(e);
	return true;
}

static void exec_exited(struct exec *e, int status)
{
	if (!e->started && !exec_check_started(e, true))
		return;
	/* what the main process left in its pipes goes out before "exit" */
	size_t total = 0;
	for (int which = 0; which < 2; which++) {
		while (total < DRAIN_MAX) {
			int n = exec_read_pipe(e, which);
			if (n <= 0)
				break;
			total += (size_t)n;
		}
	}
	/* to the starter, then to each attach stream under its own id */
	struct attach *a = NULL;
	for (;;) {
		hb_begin("exit", a ? a->id : e->id);
		hb_key("code");
		if (WIFEXITED(status))
			hb_int(WEXITSTATUS(status));
		else
			hb_lit("null");
		hb_key("signal");
		if (WIFSIGNALED(status))
			hb_int(WTERMSIG(status));
		else
			hb_lit("null");
		hb_key("timedOut");
		hb_lit(e->timed_out ? "true" : "false");
		conn_send(a ? a->conn : e->conn, NULL, 0);
		a = a ? a->next : e->attaches;
		if (!a)
			break;
	}
	while (e->attaches) { /* told: they end here */
		a = e->attaches;
		e->attaches = a->next;
		free(a);
	}
	exec_destroy(e);
}

void reap_all(void)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG | __WALL);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if (!WIFEXITED(st) && !WIFSIGNALED(st))
			continue;
		for (struct exec *e = g_execs; e; e = e->next)
			if (e->pid == pid) {
				exec_exited(e, st);
				break;
			}
	}
}


bool id_in_use(const struct conn *c, uint32_t id)
{
	if (find_exec_stream(c, id) || watch_id_in_use(c, id))
		return true;
	for (const struct stream *s = c->streams; s; s = s->next)
		if (s->id == id)
			return true;
	return false;
}

void op_exec(struct conn *c, uint32_t id, const struct jdoc *d)
{
	int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, rep[2] = {-1, -1};
	struct exec *e = NULL;
	struct req r;
	int err = 0;

	if (g_shutdown) {
		send_error(c, id, ESHUTDOWN, "the agent is shutting down", NULL);
		return;
	}
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return;
	}
	if (!req_get(c, id, OP_EXEC, d, &r))
		return;

	/* pipes: parent ends non-blocking; every fd close-on-exec. A pty: the
	 * master is read as stdout and written as stdin (a dup, so each has its
	 * own epoll registration), the slave is the child's 0-2. */
	int pty_slave = -1;
	if (r.pty) {
		if ((err = pty_open(r.rows, r.cols, &out_pipe[0], &pty_slave)))
			goto fail;
		if ((in_pipe[1] = fcntl(out_pipe[0], F_DUPFD_CLOEXEC, 3)) < 0)
			goto fail_errno;
		in_pipe[0] = out_pipe[1] = err_pipe[1] = pty_slave;
	} else if (r.want_stdin) {
		if (pipe2(in_pipe, O_CLOEXEC) < 0)
			goto fail_errno;
	} else {
		in_pipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in_pipe[0] < 0) { /* no /dev/null: an empty pipe gives EOF too */
			if (pipe2(in_pipe, O_CLOEXEC) < 0)
				goto fail_errno;
			xclose(&in_pipe[1]);
		}
	}
	if ((!r.pty && (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0)) || pipe2(rep, O_CLOEXEC) < 0)
		goto fail_errno;
	if ((in_pipe[1] >= 0 && set_nonblock(in_pipe[1]) < 0) || set_nonblock(out_pipe[0]) < 0 ||
	    (err_pipe[0] >= 0 && set_nonblock(err_pipe[0]) < 0) || set_nonblock(rep[0]) < 0)
		goto fail_errno;
	e = calloc(1, sizeof *e);
	if (!e) {
		err = ENOMEM;
		goto fail;
	}
	e->argv0 = strdup(r.argv[0]);
	e->cwd = strndup(r.cwd, r.cwdl);
	if (!e->argv0 || !e->cwd || exec_keep_info(e, &r) < 0) {
		err = ENOMEM;
		goto fail;
	}

	struct spawn_args sa = {
		.argv = r.argv, .envp = r.envp, .path = r.envpath, .shv = r.shv, .cwd = e->cwd,
		.in = in_pipe[0], .out = out_pipe[1], .err = err_pipe[1], .rep = rep[1], .ctty = r.pty,
	};
	pid_t pid = spawn_child(&sa);
	if (pid < 0)
		goto fail_errno;

	if (r.pty) /* one fd on the three child ends */
		in_pipe[0] = out_pipe[1] = err_pipe[1] = -1;
	xclose(&pty_slave);
	xclose(&in_pipe[0]);
	xclose(&out_pipe[1]);
	xclose(&err_pipe[1]);
	xclose(&rep[1]);
	e->conn = c;
	e->id = id;
	e->pid = pid;
	e->in_fd = in_pipe[1];
	e->out_fd = out_pipe[0];
	e->err_fd = err_pipe[0];
	e->errp_fd = rep[0];
	e->keepalive = r.keepalive;
	e->window = r.window;
	e->pty = r.pty;
	e->detached = r.detached;
	e->deadline = r.timeout > 0 ? g_now + r.timeout : 0;
	e->w_out = (struct watch){W_OUT, e};
	e->w_err = (struct watch){W_ERR, e};
	e->w_in = (struct watch){W_IN, e};
	e->w_errp = (struct watch){W_ERRP, e};
	e->next = g_execs;
	g_execs = e;
	e->start_due = g_now + START_HOLD_MS;
	goto out;

fail_errno:
	err = errno;
fail:
	send_error(c, id, err, "cannot start the process", NULL);
	if (e) {
		free(e->argv0);
		free(e->cwd);
		free(e->info);
		free(e);
	}
	if (r.pty) {
		if (in_pipe[0] == pty_slave)
			in_pipe[0] = out_pipe[1] = err_pipe[1] = -1;
		xclose(&pty_slave);
	}
	for (int k = 0; k < 2; k++) {
		xclose(&in_pipe[k]);
		xclose(&out_pipe[k]);
		xclose(&err_pipe[k]);
		xclose(&rep[k]);
	}
out:
	req_free(&r);
}

void op_stdin(struct conn *c, uint32_t id, const struct jdoc *d, const char *pl, size_t pll)
{
	struct req r;
	if (!req_get(c, id, OP_STDIN, d, &r))
		return;
	/* by pid (any exec), or the exec or attach stream id on this connection */
	struct exec *e = r.pid ? find_exec_pid((pid_t)r.pid) : find_exec_stream(c, id);
	if (!e || e->in_fd < 0 || e->stdin_eof)
		return; /* dropped, as documented */
	if (pll && buf_put(&e->in_pend, pl, pll) < 0) {
		c->broken = true;
		return;
	}
	if (r.eof)
		e->stdin_eof = true;
	exec_pump_stdin(e);
	if (e->in_fd >= 0 && buf_used(&e->in_pend) > STDIN_HIGH) {
		c->in_paused = true;
		c->in_blocker = e;
	}
}

void op_signal(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_SIGNAL, d, &r))
		return;
	struct exec *e = find_exec_target(c, &r);
	if (!e) {
		send_error(c, id, ESRCH, "no such exec", NULL);
		return;
	}
	send_ok_or_error(c, id, kill_group(e->pid, (int)r.signal), "cannot signal the process group", NULL);
}

/* The host took `bytes` of an exec's output (per-exec flow control): its
 * pipes are read again while less than its window is unacknowledged. No
 * reply; a credit for an exec that is gone is ignored. */
void op_credit(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_CREDIT, d, &r))
		return;
	/* the starter's stream only: attach streams have no window */
	struct exec *e = g_execs;
	while (e && !(e->conn == c && e->id == id))
		e = e->next;
	if (!e || !e->window)
		return;
	e->unacked = r.window >= e->unacked ? 0 : e->unacked - r.window;
	exec_update_pipes(e);
}
