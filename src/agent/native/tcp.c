/*
 * corral-agent: TCP streams to a port on the sandbox's own loopback (the
 * connect op). The host's port proxy reaches a sandbox's servers this way,
 * whatever the sandbox's network: it works with network "none", and for
 * microVMs over the same channel as everything else.
 *
 *   {"op":"connect","id":N,"port":P}  -> {"ev":"connected","id":N} or error
 *   {"op":"data","id":N} + bytes       -> written to the socket, in order
 *   {"op":"end","id":N}                -> shutdown(SHUT_WR) once written
 *   {"op":"close","id":N}              -> the socket closed at once, no reply
 *   {"ev":"data","id":N} + bytes        <- what the socket reads (<= 64 KiB)
 *   {"ev":"end","id":N}                 <- the socket's EOF
 *
 * 127.0.0.1 first, then ::1 if that is refused (a server bound to
 * "localhost" may have only the IPv6 one). The stream ends once both
 * directions have ended, or with an error; losing the connection closes
 * the socket. Bounds: reading the socket stops while the connection has
 * more than OUT_HIGH unsent (and resumes below OUT_LOW, as exec pipes do);
 * data for the socket is queued up to STDIN_HIGH, past which the agent
 * stops reading that connection until the socket takes it.
 */
#include "agent.h"
#include <netinet/in.h>
#include <arpa/inet.h>

struct stream *g_dead_streams;

static void tcp_set_events(struct stream *s)
{
	struct conn *c = s->conn;
	uint32_t ev = 0;
	if (!s->connected)
		ev = EPOLLOUT;
	else {
		/* the connection's pause, or this stream's own (the flow op) */
		if (!s->rd_eof && !(c && c->pipes_paused) && !s->paused)
			ev |= EPOLLIN;
		if (buf_used(&s->q) || (s->wr_end && !s->wr_shut))
			ev |= EPOLLOUT;
	}
	if (ev == s->events)
		return;
	if (!ev)
		ep_ctl(EPOLL_CTL_DEL, s->fd, 0, NULL);
	else if (ep_ctl(s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, ev, &s->w) < 0)
		logmsg("corral-agent: epoll tcp: %s", strerror(errno));
	s->events = ev;
}

/* Unlinks s from its connection and frees it at the end of the tick (an
 * event for its fd may still be waiting in this tick's batch). */
static void tcp_remove(struct stream *s)
{
	struct conn *c = s->conn;
	if (c) {
		for (struct stream **pp = &c->streams; *pp; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		if (c->in_tcp_blocker == s)
			conn_unblock(c);
	}
	stream_free(s);
}

void tcp_free(struct stream *s)
{
	if (s->events)
		ep_ctl(EPOLL_CTL_DEL, s->fd, 0, NULL);
	s->events = 0;
	xclose(&s->fd);
	buf_free(&s->q);
	s->dead = true;
	s->conn = NULL;
	s->next = g_dead_streams;
	g_dead_streams = s;
}

static int tcp_socket(int port, bool v6)
{
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int r;
	if (v6) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
		r = connect(fd, (struct sockaddr *)&a, sizeof a);
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		r = connect(fd, (struct sockaddr *)&a, sizeof a);
	}
	if (r < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The error of a failed connect: the stream ends with it, after ::1 was tried. */
static void tcp_failed(struct stream *s, int err)
{
	struct conn *c = s->conn;
	if (err == ECONNREFUSED && !s->tried_v6) {
		s->tried_v6 = true;
		if (s->events)
			ep_ctl(EPOLL_CTL_DEL, s->fd, 0, NULL);
		s->events = 0;
		xclose(&s->fd);
		s->fd = tcp_socket((int)s->port, true);
		if (s->fd >= 0) {
			tcp_set_events(s);
			return;
		}
		err = errno == EAFNOSUPPORT ? ECONNREFUSED : errno;
	}
	char msg[64];
	snprintf(msg, sizeof msg, "cannot connect to port %d", (int)s->port);
	send_error(c, s->id, err, msg, NULL);
	tcp_remove(s);
}

void op_connect(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_CONNECT, d, &r))
		return;
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return;
	}
	struct stream *s = calloc(1, sizeof *s);
	if (!s) {
		send_error(c, id, ENOMEM, NULL, NULL);
		return;
	}
	s->kind = S_TCP;
	s->id = id;
	s->port = r.port;
	s->conn = c;
	s->w = (struct watch){W_TCP, s};
	s->fd = tcp_socket((int)r.port, false);
	s->next = c->streams;
	c->streams = s;
	if (s->fd < 0) {
		tcp_failed(s, errno);
		return;
	}
	tcp_set_events(s);
}

/* Writes what is queued; the half-close once all is written after "end". */
static void tcp_flush(struct stream *s)
{
	while (buf_used(&s->q)) {
		ssize_t w = write(s->fd, s->q.p + s->q.off, buf_used(&s->q));
		if (w > 0) {
			s->q.off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		send_error(s->conn, s->id, errno, "write to the socket failed", NULL);
		tcp_remove(s);
		return;
	}
	buf_settle(&s->q);
	struct conn *c = s->conn;
	if (c && c->in_tcp_blocker == s && buf_used(&s->q) < STDIN_HIGH / 4)
		conn_unblock(c);
	if (!buf_used(&s->q)) {
		buf_free(&s->q);
		if (s->wr_end && !s->wr_shut) {
			shutdown(s->fd, SHUT_WR);
			s->wr_shut = true;
		}
	}
	if (s->wr_shut && s->rd_eof) {
		tcp_remove(s);
		return;
	}
	tcp_set_events(s);
}

void tcp_data(struct conn *c, struct stream *s, const char *pl, size_t pll)
{
	if (s->wr_end)
		return;
	if (buf_put(&s->q, pl, pll) < 0) {
		send_error(c, s->id, ENOMEM, NULL, NULL);
		tcp_remove(s);
		return;
	}
	if (s->connected)
		tcp_flush(s);
	if (!s->dead && buf_used(&s->q) > STDIN_HIGH && !c->in_paused) {
		c->in_paused = true;
		c->in_tcp_blocker = s;
	}
}

/* The host is done with a TCP stream (both ways): the socket is closed, no reply. */
void op_close(struct conn *c, uint32_t id)
{
	for (struct stream *s = c->streams; s; s = s->next)
		if (s->id == id && s->kind == S_TCP) {
			tcp_remove(s);
			return;
		}
}

void tcp_end(struct stream *s)
{
	s->wr_end = true;
	if (s->connected)
		tcp_flush(s);
}

void tcp_event(struct stream *s, uint32_t ev)
{
	struct conn *c = s->conn;
	if (!usable(c))
		return;
	if (!s->connected) {
		int err = 0;
		socklen_t l = sizeof err;
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err) {
			tcp_failed(s, err);
			return;
		}
		s->connected = true;
		send_simple(c, "connected", s->id);
		tcp_flush(s);
		return;
	}
	if (ev & (EPOLLOUT | EPOLLERR)) {
		tcp_flush(s);
		if (s->dead)
			return;
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !s->rd_eof) {
		if (buf_used(&c->out) >= OUT_HIGH) {
			conn_set_pipes_paused(c, true);
			return;
		}
		ssize_t n = frame_read(c, "data", s->id, s->fd, CHUNK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			send_error(c, s->id, errno, "read from the socket failed", NULL);
			tcp_remove(s);
			return;
		}
		if (n == 0) {
			s->rd_eof = true;
			send_simple(c, "end", s->id);
			if (s->wr_shut) {
				tcp_remove(s);
				return;
			}
		}
		tcp_set_events(s);
	}
}

/* Reading resumes (or pauses) with the connection's exec pipes. */
void tcp_update_conn(struct conn *c)
{
	for (struct stream *s = c->streams; s; s = s->next)
		if (s->kind == S_TCP && s->connected)
			tcp_set_events(s);
}
