/*
 * corral-agent: what lets a host come back to a running command. A
 * keepAlive exec keeps the last RING_CAP bytes of its output in a ring;
 * the attach op replays the ring to a new stream and then sends it the
 * output live, and its exit, as the starter gets them; procs lists the
 * running execs. Streams are found by the starter's id or an attach id.
 */
#include "agent.h"

struct exec *find_exec_pid(pid_t pid)
{
	for (struct exec *e = g_execs; e; e = e->next)
		if (e->pid == pid)
			return e;
	return NULL;
}

/* The exec that stream id of c starts or is attached to. */
struct exec *find_exec_stream(const struct conn *c, uint32_t id)
{
	for (struct exec *e = g_execs; e; e = e->next) {
		if (e->conn == c && e->id == id)
			return e;
		for (const struct attach *a = e->attaches; a; a = a->next)
			if (a->conn == c && a->id == id)
				return e;
	}
	return NULL;
}

/* The command a signal or resize names: by pid, else by the stream id
 * (its own or an attach) in `target` on this connection. */
struct exec *find_exec_target(const struct conn *c, const struct req *r)
{
	if (r->pid)
		return find_exec_pid((pid_t)r->pid);
	return r->target >= 1 && r->target <= INT32_MAX ? find_exec_stream(c, (uint32_t)r->target) : NULL;
}

/* Whether a connection that gets e's output has too much unsent, a stream
 * of it is paused (flow), or the starter's window is full (credit). */
bool exec_readers_paused(const struct exec *e)
{
	if (!e->detached && e->conn &&
	    (e->conn->pipes_paused || e->out_paused || (e->window && e->unacked >= e->window)))
		return true;
	for (const struct attach *a = e->attaches; a; a = a->next)
		if (a->conn->pipes_paused || a->paused)
			return true;
	return false;
}

bool exec_stream_set_paused(struct conn *c, uint32_t id, bool paused)
{
	for (struct exec *e = g_execs; e; e = e->next) {
		if (e->conn == c && e->id == id) {
			e->out_paused = paused;
			exec_update_pipes(e);
			return true;
		}
		for (struct attach *a = e->attaches; a; a = a->next)
			if (a->conn == c && a->id == id) {
				a->paused = paused;
				exec_update_pipes(e);
				return true;
			}
	}
	return false;
}

/* ---------------------------------------------------------------- ring */

static void ring_push(struct ring *r, int which, const char *p, size_t n)
{
	if (n > RING_CAP - 4) { /* only the tail of a chunk bigger than the ring */
		p += n - (RING_CAP - 4);
		n = RING_CAP - 4;
	}
	if (!r->p && !(r->p = malloc(2 * RING_CAP)))
		return; /* no memory: nothing kept, the live output goes on */
	/* make room: drop the oldest records, and cut the last one dropped
	 * at its start instead when that is enough, so the ring holds the last
	 * RING_CAP bytes and not as little as one chunk (less up to 4 when the
	 * excess falls in a dropped record's header: a record is never empty) */
	while (r->len - r->off + 4 + n > RING_CAP) {
		uint32_t h = get32(r->p + r->off);
		size_t rl = h & 0x7fffffffu, excess = r->len - r->off + 4 + n - RING_CAP;
		if (excess >= rl) {
			r->off += 4 + rl;
		} else {
			r->off += excess;
			put32(r->p + r->off, (uint32_t)(rl - excess) | (h & 0x80000000u));
		}
	}
	if (r->len + 4 + n > 2 * RING_CAP) {
		memmove(r->p, r->p + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	put32(r->p + r->len, (uint32_t)n | (which ? 0x80000000u : 0));
	memcpy(r->p + r->len + 4, p, n);
	r->len += 4 + n;
}

/* Sends the ring's records to stream id of c, as the output they were. */
static void ring_replay(const struct ring *r, struct conn *c, uint32_t id)
{
	for (size_t o = r->off; o < r->len;) {
		uint32_t h = get32(r->p + o);
		size_t n = h & 0x7fffffffu;
		hb_begin(h & 0x80000000u ? "stderr" : "stdout", id);
		conn_send(c, r->p + o + 4, n);
		o += 4 + n;
	}
}

/* ------------------------------------------------------------- output */

static void send_output(struct conn *c, uint32_t id, int which, const char *p, size_t n)
{
	if (!usable(c))
		return;
	hb_begin(which ? "stderr" : "stdout", id);
	conn_send(c, p, n);
	if (buf_used(&c->out) > OUT_HIGH)
		conn_set_pipes_paused(c, true);
}

/* A chunk of e's output: into its ring (keepAlive), to its starter (unless
 * detached) and to every attach stream. */
void exec_output(struct exec *e, int which, const char *p, size_t n)
{
	if (e->keepalive)
		ring_push(&e->ring, which, p, n);
	if (!e->detached)
		send_output(e->conn, e->id, which, p, n);
	for (struct attach *a = e->attaches; a; a = a->next)
		send_output(a->conn, a->id, which, p, n);
}

/* ------------------------------------------------------------- attach */

static void attach_free(struct exec *e, struct attach **pp)
{
	struct attach *a = *pp;
	*pp = a->next;
	free(a);
	exec_update_pipes(e); /* it may have been the one that paused them */
}

/* end of an attach stream: it gets no more output ({"ev":"ok"}). */
bool attach_end(struct conn *c, uint32_t id)
{
	for (struct exec *e = g_execs; e; e = e->next)
		for (struct attach **pp = &e->attaches; *pp; pp = &(*pp)->next)
			if ((*pp)->conn == c && (*pp)->id == id) {
				attach_free(e, pp);
				send_simple(c, "ok", id);
				return true;
			}
	return false;
}

/* A connection going: its attach streams end (the execs run on). */
void attach_drop_conn(struct conn *c)
{
	for (struct exec *e = g_execs; e; e = e->next)
		for (struct attach **pp = &e->attaches; *pp;) {
			if ((*pp)->conn == c)
				attach_free(e, pp);
			else
				pp = &(*pp)->next;
		}
}

/* attach: {"pid": P} -> "started" {pid, pty}, the ring's output, then the
 * output live and "exit", as the exec's starter gets them. ESRCH when no
 * exec of the agent has that pid (it ended, or the agent did not start it). */
void op_attach(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_ATTACH, d, &r))
		return;
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return;
	}
	struct exec *e = find_exec_pid((pid_t)r.pid);
	if (!e) {
		send_error(c, id, ESRCH, "no such process", NULL);
		return;
	}
	struct attach *a = calloc(1, sizeof *a);
	if (!a) {
		send_error(c, id, ENOMEM, NULL, NULL);
		return;
	}
	a->conn = c;
	a->id = id;
	a->next = e->attaches;
	e->attaches = a;
	hb_begin("started", id);
	hb_kint("pid", e->pid);
	hb_key("pty");
	hb_lit(e->pty ? "true" : "false");
	conn_send(c, NULL, 0);
	ring_replay(&e->ring, c, id);
	if (buf_used(&c->out) > OUT_HIGH)
		conn_set_pipes_paused(c, true);
	else
		exec_update_pipes(e);
}

/* -------------------------------------------------------------- procs */

/* Keeps what procs tells of e: argv (cut at INFO_MAX bytes), cwd, tag. */
int exec_keep_info(struct exec *e, const struct req *r)
{
	size_t cwdl = r->cwdl, tagl = r->tag ? r->tagl : 0, used = 0, argc = 0;
	for (char **a = r->argv; *a; a++) {
		size_t l = strlen(*a) + 1;
		if (used + l > INFO_MAX)
			break;
		used += l;
		argc++;
	}
	e->info = malloc(used + cwdl + 1 + tagl + 1);
	if (!e->info)
		return -1;
	char *w = e->info;
	for (size_t k = 0; k < argc; k++) {
		size_t l = strlen(r->argv[k]) + 1;
		memcpy(w, r->argv[k], l);
		w += l;
	}
	memcpy(w, r->cwd, cwdl);
	w[cwdl] = 0;
	w += cwdl + 1;
	if (tagl)
		memcpy(w, r->tag, tagl);
	w[tagl] = 0;
	e->info_argc = argc;
	e->info_cut = r->argv[argc] != NULL;
	return 0;
}

/* What the exec held for attach and procs, when it goes. Attach streams
 * still open (an exec that never started) end with ESRCH. */
void exec_free_extras(struct exec *e)
{
	while (e->attaches) {
		struct attach *a = e->attaches;
		e->attaches = a->next;
		send_error(a->conn, a->id, ESRCH, "the process ended", NULL);
		free(a);
	}
	free(e->ring.p);
	memset(&e->ring, 0, sizeof e->ring);
	free(e->info);
	e->info = NULL;
}

/* procs -> one "entry" per running exec: pid, argv, cwd, tag (or null),
 * pty, keepAlive, detached, truncated (argv cut); then "end" {count}. */
void op_procs(struct conn *c, uint32_t id, const struct jdoc *d)
{
	(void)d;
	int64_t n = 0;
	for (struct exec *e = g_execs; e; e = e->next) {
		if (!e->info)
			continue;
		size_t argc = e->info_argc;
		hb_begin("entry", id);
		hb_kint("pid", e->pid);
		hb_key("argv");
		hb_lit("[");
		const char *p = e->info;
		for (size_t k = 0; k < argc; k++) {
			size_t l = strlen(p);
			if (k)
				hb_lit(",");
			hb_str(p, l);
			p += l + 1;
		}
		hb_lit("]");
		hb_key("cwd");
		hb_str(p, strlen(p));
		p += strlen(p) + 1;
		hb_key("tag");
		if (*p)
			hb_str(p, strlen(p));
		else
			hb_lit("null");
		hb_key("pty");
		hb_lit(e->pty ? "true" : "false");
		hb_key("keepAlive");
		hb_lit(e->keepalive ? "true" : "false");
		hb_key("detached");
		hb_lit(e->detached ? "true" : "false");
		hb_key("truncated");
		hb_lit(e->info_cut ? "true" : "false");
		conn_send(c, NULL, 0);
		n++;
	}
	hb_begin("end", id);
	hb_kint("count", n);
	conn_send(c, NULL, 0);
}
