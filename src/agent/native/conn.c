/*
 * corral-agent: connections. Frames in, dispatch by op, replies out, accept.
 */
#include "agent.h"

struct conn *g_conns, *g_dead_conns;

static void conn_update_events(struct conn *c)
{
	if (c->dead)
		return;
	uint32_t ev = 0;
	if (!c->closing && !c->in_paused)
		ev |= EPOLLIN;
	if (buf_used(&c->out) || has_pumpable(c))
		ev |= EPOLLOUT;
	if (ev != c->events && ep_ctl(EPOLL_CTL_MOD, c->fd, ev, &c->w) == 0)
		c->events = ev;
}

/* Forgets every exec and stream of c: execs without keepAlive are killed,
 * the others keep running with their output dropped. */
static void conn_detach(struct conn *c)
{
	for (struct exec *e = g_execs; e; e = e->next) {
		if (e->conn != c)
			continue;
		/* a terminal's input stays open for whoever attaches next */
		if (!(e->pty && e->keepalive))
			exec_close_stdin(e);
		if (!e->keepalive)
			kill_group(e->pid, SIGKILL);
		e->conn = NULL;
		exec_update_pipes(e);
	}
	attach_drop_conn(c);
	watch_drop_conn(c);
	while (c->streams) {
		struct stream *s = c->streams;
		c->streams = s->next;
		stream_free(s);
	}
	c->in_blocker = NULL;
	c->in_tcp_blocker = NULL;
	c->in_paused = false;
	c->pipes_paused = false;
}

void conn_destroy(struct conn *c)
{
	if (c->dead)
		return;
	conn_detach(c);
	/* explicit DEL: a child between fork and execve may hold a copy of the
	 * fd, and epoll keeps watching until every copy is closed */
	ep_ctl(EPOLL_CTL_DEL, c->fd, 0, NULL);
	xclose(&c->fd);
	c->dead = true;
	for (struct conn **pp = &g_conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->next = g_dead_conns;
	g_dead_conns = c;
}

static void conn_protocol_error(struct conn *c, const char *why)
{
	send_error(c, 0, EPROTO, why, NULL);
	conn_detach(c);
	c->closing = true;
	c->close_deadline = g_now + CLOSE_LINGER_MS;
	conn_update_events(c);
}

/* req_check for an op's handler: false once the error is sent. */
bool req_get(struct conn *c, uint32_t id, int op, const struct jdoc *d, struct req *r)
{
	const char *msg;
	int err = req_check(op, d, g_default_path, r, &msg);
	if (!err)
		return true;
	send_error(c, id, err, msg, NULL);
	req_free(r);
	return false;
}

static void handle_frame(struct conn *c, const char *h, size_t hl, const char *pl, size_t pll)
{
	struct jdoc d;
	uint32_t id;
	int op = 0;
	const char *msg;
	int err = request_parse(&d, h, hl, &id, &op, &msg);
	if (err < 0) {
		jfree(&d);
		conn_protocol_error(c, "frame header is not a JSON object");
		return;
	}
	if (err) {
		send_error(c, id, err, msg, NULL);
		jfree(&d);
		return;
	}
	switch (op) {
	case OP_DATA: op_data(c, id, pl, pll); break;
	case OP_STDIN: op_stdin(c, id, &d, pl, pll); break;
	case OP_END: /* the end of an attach or watch stream, else of a write */
		if (!attach_end(c, id) && !watch_end(c, id))
			op_end(c, id);
		break;
	case OP_HELLO:
		hb_begin("hello", id);
		hb_kint("version", 1);
		hb_key("agent");
		hb_str(AGENT_NAME, strlen(AGENT_NAME));
		hb_kint("pid", getpid());
		conn_send(c, NULL, 0);
		break;
	case OP_EXEC: op_exec(c, id, &d); break;
	case OP_SIGNAL: op_signal(c, id, &d); break;
	case OP_CREDIT: op_credit(c, id, &d); break;
	case OP_WRITE: op_write(c, id, &d); break;
	case OP_READ: op_read(c, id, &d); break;
	case OP_STAT: op_stat(c, id, &d); break;
	case OP_LIST: op_list(c, id, &d); break;
	case OP_MKDIR: op_mkdir(c, id, &d); break;
	case OP_REMOVE: op_remove(c, id, &d); break;
	case OP_RESIZE: op_resize(c, id, &d); break;
	case OP_ATTACH: op_attach(c, id, &d); break;
	case OP_PROCS: op_procs(c, id, &d); break;
	case OP_WATCH: op_watch(c, id, &d); break;
	case OP_RENAME: op_rename(c, id, &d); break;
	case OP_FLOW: op_flow(c, id, &d); break;
	case OP_CONNECT: op_connect(c, id, &d); break;
	case OP_CLOSE: op_close(c, id); break;
	}
	jfree(&d);
}

void conn_process_input(struct conn *c)
{
	c->needs_input = false;
	struct buf *b = &c->in;
	while (usable(c) && !c->closing && !c->in_paused) {
		if (buf_used(b) < 8)
			break; /* (b->p may be NULL) */
		const char *p = b->p + b->off;
		uint32_t hl, pl;
		int whole = frame_next(p, buf_used(b), &hl, &pl);
		if (whole < 0) {
			conn_protocol_error(c, "bad frame lengths");
			break;
		}
		if (!whole)
			break;
		b->off += 8 + (size_t)hl + pl; /* handlers do not touch c->in: p stays valid */
		handle_frame(c, p + 8, hl, p + 8 + hl, pl);
	}
	if (c->dead)
		return;
	buf_settle(b);
	if (c->in_paused && buf_used(b) == 0)
		buf_free(b);
}

void conn_read(struct conn *c)
{
	struct buf *b = &c->in;
	size_t want = 16384;
	if (buf_used(b) >= 8) {
		/* make room for the whole frame being received */
		size_t total = 8 + (size_t)get32(b->p + b->off) + get32(b->p + b->off + 4);
		if (total <= 8 + MAX_HEADER + MAX_PAYLOAD && total > buf_used(b) + want)
			want = total - buf_used(b);
	}
	if (buf_reserve(b, want) < 0) {
		c->broken = true;
		return;
	}
	ssize_t n;
	do
		n = read(c->fd, b->p + b->len, b->cap - b->len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		conn_destroy(c);
		return;
	}
	b->len += (size_t)n;
	conn_process_input(c);
}

/* Writes what it can, pumps file streams, adjusts backpressure. */
void conn_flush(struct conn *c)
{
	if (c->dead)
		return;
	struct buf *b = &c->out;
	for (int round = 0;; round++) {
		while (buf_used(b)) {
			ssize_t w = write(c->fd, b->p + b->off, buf_used(b));
			if (w > 0) {
				b->off += (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN)
				break;
			conn_destroy(c); /* EPIPE, ECONNRESET, ... */
			return;
		}
		buf_settle(b);
		if (c->closing) {
			if (!buf_used(b))
				conn_destroy(c);
			return;
		}
		if (round >= 4 || buf_used(b) >= OUT_LOW || !has_pumpable(c))
			break;
		conn_pump(c);
		if (!buf_used(b))
			break;
	}
	if (c->pipes_paused && buf_used(b) < OUT_LOW)
		conn_set_pipes_paused(c, false);
	conn_update_events(c);
}

struct conn *conn_new(int fd)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->fd = fd;
	c->w = (struct watch){W_CONN, c};
	c->events = EPOLLIN;
	if (ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN, &c->w) < 0) {
		free(c);
		return NULL;
	}
	c->next = g_conns;
	g_conns = c;
	return c;
}
