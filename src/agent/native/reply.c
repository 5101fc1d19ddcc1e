/*
 * corral-agent: JSON output. A reply's header is built in one scratch buffer,
 * then framed with its payload into a connection's output.
 */
#include "agent.h"

static struct buf g_hb;
static bool g_hb_oom;

static void hb_put(const void *s, size_t n)
{
	if (buf_put(&g_hb, s, n) < 0)
		g_hb_oom = true;
}

void hb_lit(const char *s) { hb_put(s, strlen(s)); }

void hb_int(int64_t v)
{
	char t[24];
	int n = snprintf(t, sizeof t, "%lld", (long long)v);
	hb_put(t, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t l;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) l = 2;
	else if (c == 0xE0) { l = 3; lo = 0xA0; }
	else if (c >= 0xE1 && c <= 0xEC) l = 3;
	else if (c == 0xED) { l = 3; hi = 0x9F; }
	else if (c >= 0xEE && c <= 0xEF) l = 3;
	else if (c == 0xF0) { l = 4; lo = 0x90; }
	else if (c >= 0xF1 && c <= 0xF3) l = 4;
	else if (c == 0xF4) { l = 4; hi = 0x8F; }
	else return 0;
	if (n < l || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < l; k++)
		if (s[k] < 0x80 || s[k] > 0xBF)
			return 0;
	return l;
}

/* JSON string body without quotes. Invalid UTF-8 bytes become \u00XX. */
void hb_esc(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;
	while (i < n) {
		unsigned char c = u[i];
		size_t l = (c >= 0x20 && c != '"' && c != '\\') ? utf8_len(u + i, n - i) : 0;
		if (l) {
			i += l;
			continue;
		}
		hb_put(s + run, i - run);
		char t[8];
		switch (c) {
		case '"': hb_lit("\\\""); break;
		case '\\': hb_lit("\\\\"); break;
		case '\n': hb_lit("\\n"); break;
		case '\r': hb_lit("\\r"); break;
		case '\t': hb_lit("\\t"); break;
		default:
			snprintf(t, sizeof t, "\\u%04x", c);
			hb_lit(t);
		}
		run = ++i;
	}
	hb_put(s + run, n - run);
}

void hb_str(const char *s, size_t n)
{
	hb_lit("\"");
	hb_esc(s, n);
	hb_lit("\"");
}

void hb_begin(const char *ev, uint32_t id)
{
	g_hb.off = g_hb.len = 0;
	g_hb_oom = false;
	hb_lit("{\"ev\":\"");
	hb_lit(ev);
	hb_lit("\",\"id\":");
	hb_int(id);
}

void hb_key(const char *k)
{
	hb_lit(",\"");
	hb_lit(k);
	hb_lit("\":");
}

void hb_kint(const char *k, int64_t v) { hb_key(k); hb_int(v); }

/* The header last built: for the fuzz target, which checks it parses. */
const char *hb_data(size_t *len)
{
	*len = g_hb.len;
	return g_hb.p;
}

/* Frames g_hb (closing it with '}') and payload into c's output. */
void conn_send(struct conn *c, const void *payload, size_t plen)
{
	hb_lit("}");
	if (!usable(c))
		return;
	if (g_hb_oom || g_hb.len > MAX_HEADER) {
		logmsg("corral-agent: cannot build a header (%zu bytes)", g_hb.len);
		c->broken = true;
		return;
	}
	if (buf_reserve(&c->out, 8 + g_hb.len + plen) < 0) {
		c->broken = true;
		return;
	}
	char *f = c->out.p + c->out.len;
	put32(f, (uint32_t)g_hb.len);
	put32(f + 4, (uint32_t)plen);
	memcpy(f + 8, g_hb.p, g_hb.len);
	if (plen)
		memcpy(f + 8 + g_hb.len, payload, plen);
	c->out.len += 8 + g_hb.len + plen;
	if (g_hb.cap > CHUNK)
		buf_free(&g_hb);
}

void send_simple(struct conn *c, const char *ev, uint32_t id)
{
	hb_begin(ev, id);
	conn_send(c, NULL, 0);
}

/* An op's one reply: "ok" when err is 0, else the error (send_error). */
void send_ok_or_error(struct conn *c, uint32_t id, int err, const char *msg, const char *path)
{
	if (err)
		send_error(c, id, err, msg, path);
	else
		send_simple(c, "ok", id);
}

/* Starts {"ev":"error","id":id,"code":<errno name>,"message":" */
static void error_begin(uint32_t id, int err)
{
	hb_begin("error", id);
	hb_key("code");
	hb_str(errname(err), strlen(errname(err)));
	hb_key("message");
	hb_lit("\"");
}

/* A path or name from a request, echoed: at most MSG_PATH_MAX bytes. */
static void hb_echo(const char *s)
{
	size_t l = strlen(s);
	hb_esc(s, l > MSG_PATH_MAX ? MSG_PATH_MAX : l);
	if (l > MSG_PATH_MAX)
		hb_lit("...");
}

/* error with code = errno name; message = msg or strerror, then ": path". */
void send_error(struct conn *c, uint32_t id, int err, const char *msg, const char *path)
{
	char se[128];
	if (!msg) {
		snprintf(se, sizeof se, "%s", strerror(err));
		if (se[0] >= 'A' && se[0] <= 'Z' && se[1] >= 'a' && se[1] <= 'z')
			se[0] = (char)(se[0] - 'A' + 'a');
		msg = se;
	}
	error_begin(id, err);
	hb_esc(msg, strlen(msg));
	if (path) {
		hb_lit(": ");
		hb_echo(path);
	}
	hb_lit("\"");
	conn_send(c, NULL, 0);
}

/* error whose message says what failed, on what, and why (strerror), as
 * in "cannot execute nosuchcmd: No such file or directory". */
void send_error_why(struct conn *c, uint32_t id, int err, const char *what, const char *subject)
{
	const char *why = strerror(err);
	error_begin(id, err);
	hb_esc(what, strlen(what));
	hb_lit(" ");
	hb_echo(subject);
	hb_lit(": ");
	hb_esc(why, strlen(why));
	hb_lit("\"");
	conn_send(c, NULL, 0);
}

/*
 * Reads up to max bytes of fd straight into a new frame {"ev":ev,"id":id}
 * at the end of c's output. Returns the byte count, 0 at EOF, -1 + errno.
 */
ssize_t frame_read(struct conn *c, const char *ev, uint32_t id, int fd, size_t max)
{
	hb_begin(ev, id);
	hb_lit("}");
	if (g_hb_oom || buf_reserve(&c->out, 8 + g_hb.len + max) < 0) {
		c->broken = true;
		errno = ENOMEM;
		return -1;
	}
	char *f = c->out.p + c->out.len;
	memcpy(f + 8, g_hb.p, g_hb.len);
	ssize_t n;
	do
		n = read(fd, f + 8 + g_hb.len, max);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	put32(f, (uint32_t)g_hb.len);
	put32(f + 4, (uint32_t)n);
	c->out.len += 8 + g_hb.len + (size_t)n;
	return n;
}
