/*
 * corral-agent: the in-sandbox agent of corral (docs/protocol.md, version 1).
 *
 * Build: musl-gcc -static -Os -Wall -Wextra -Werror -o corral-agent agent.c
 *        (plain gcc works too).
 * Usage: corral-agent [--socket PATH] [--vsock PORT] [--fd N] [--ready-fd N]
 *                     [--root DIR] [--path DIRS]
 * Test:  python3 test_agent.py ./corral-agent
 *
 * One thread, one epoll loop. SIGCHLD/SIGTERM/SIGINT are blocked and read
 * from a signalfd; exec timeouts and other deadlines are the epoll_wait
 * timeout. Every fd the agent owns is O_CLOEXEC; SIGPIPE is ignored in the
 * agent and reset to the default in children.
 *
 * Readings of protocol.md where it is silent or ambiguous:
 * - Names or link targets that are not valid UTF-8 are sent with each
 *   invalid byte escaped as \u00XX (the byte's latin-1 code point), so such
 *   names do not round-trip. Lone UTF-16 surrogates in \u escapes of a
 *   request decode to U+FFFD. Raw bytes in request strings are taken as is.
 * - A frame that cannot be parsed (bad lengths, header not a JSON object)
 *   gets {"ev":"error","id":0,"code":"EPROTO"} and the connection is closed
 *   once that is flushed (at most 2 s later). A well-formed object without a
 *   valid id gets the same error but keeps the connection; a bad op, a
 *   missing or mistyped field gets EPROTO on the request's id.
 * - Opening a stream (exec/write/read/list) with an id that is still open on
 *   the connection is answered with EPROTO on that id.
 * - If an exec has both argv and cmd, argv wins. cwd must be absolute
 *   (EINVAL otherwise).
 * - EOF on a connection (including a half-close) counts as losing it.
 *   With --fd the stream is then closed and the agent keeps running.
 * - write: "size" in the ok reply is the number of bytes this stream
 *   wrote (not the file size, which differs with append).
 * - read: FIFOs and sockets are refused with EINVAL (they could block the
 *   agent); character devices are read non-blocking and EAGAIN ends the
 *   stream with an EAGAIN error.
 * - remove of a path whose last component is "." or ".." is EINVAL, or
 *   EBUSY when it names the root. Trailing slashes are ignored.
 * - list is flow controlled like read (entries go out while the unsent
 *   output is under 256 KiB).
 * - exec after SIGTERM/SIGINT started the shutdown is ESHUTDOWN.
 * - "started" goes out START_HOLD_MS after the fork, or with "exit" for a
 *   command that ends sooner (its output then comes between the two).
 * - timeoutMs may be any positive number (fractions round up); <= 0 or
 *   null means no timeout. hello's "pid" is getpid() (1 when PID 1).
 * - Without openat2 (kernel < 5.6) file operations fail with ENOSYS; there
 *   is deliberately no fallback resolver.
 * - --vsock PORT listens on AF_VSOCK (any CID, PORT) as well as, or instead
 *   of, --socket; connections from either listener are served alike. A
 *   listener that cannot be set up is fatal (exit 1): it is the only way in.
 * - --root DIR (default "/") roots the file operations only; exec always
 *   runs with the agent's own root and cwd is a plain chdir().
 * - stdin data is queued per exec; when more than 1 MiB is queued the agent
 *   stops reading that connection until the child has taken it.
 * - exec stdout/stderr are no longer read while the connection has more
 *   than 1 MiB unsent, and again below 256 KiB. At exit the pipes are
 *   drained (at most 4 MiB) before "exit" is sent.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

/* musl ships no linux/openat2.h: define what we use. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif
#ifndef __WALL
#define __WALL 0x40000000
#endif
#ifndef PR_SET_CHILD_SUBREAPER
#define PR_SET_CHILD_SUBREAPER 36
#endif

/* <linux/vm_sockets.h> is not in musl's headers: the kernel's sockaddr_vm. */
#ifndef VMADDR_CID_ANY
#define VMADDR_CID_ANY 0xFFFFFFFFu
#endif
struct corral_sockaddr_vm {
	sa_family_t svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};

struct corral_open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};

#define AGENT_NAME "corral-agent/0.1"
#define MAX_HEADER 65536u
#define MAX_PAYLOAD (1024u * 1024u)
#define CHUNK (64u * 1024u)
#define OUT_HIGH (1024u * 1024u)   /* pause exec pipes above this */
#define OUT_LOW (256u * 1024u)     /* resume pipes / pump files below this */
#define STDIN_HIGH (1024u * 1024u) /* stop reading a connection above this */
#define DRAIN_MAX (4u * 1024u * 1024u)
#define MSG_PATH_MAX 1024 /* bytes of a path echoed in an error message */
#define SHUTDOWN_WAIT_MS 2000
#define CLOSE_LINGER_MS 2000
/* A command that ends this soon after its fork has its "started" sent with
 * its "exit", in one write: two fewer wakeups of the host's side for a
 * short command. The errpipe is looked at once, at this deadline or at the
 * exit, instead of waking the agent when execve succeeds; a command still
 * before its execve then (a slow fork) is watched through the errpipe. */
#define START_HOLD_MS 2
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* PATH for commands whose request sets none: DEFAULT_PATH unless --path */
static const char *g_default_path = DEFAULT_PATH;

/* ------------------------------------------------------------------ */
/* small utilities                                                     */

static void logmsg(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof b - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof b - 2)
		n = sizeof b - 2;
	b[n++] = '\n';
	size_t off = 0;
	while (off < (size_t)n) {
		ssize_t w = write(2, b + off, (size_t)n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

static uint32_t get32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static void xclose(int *fd)
{
	if (*fd >= 0) {
		close(*fd); /* never retried: Linux frees the fd even on EINTR */
		*fd = -1;
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

static int write_full(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static const char *errname(int e)
{
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG)
	E(ENOEXEC) E(EBADF) E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES)
	E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR)
	E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY)
	E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE)
	E(EDEADLK) E(ENAMETOOLONG) E(ENOLCK) E(ENOSYS) E(ENOTEMPTY)
	E(ELOOP) E(ENODATA) E(EPROTO) E(EOVERFLOW) E(EILSEQ) E(ENOTSOCK)
	E(EMSGSIZE) E(EOPNOTSUPP) E(EADDRINUSE) E(ENOTCONN) E(ESHUTDOWN)
	E(ETIMEDOUT) E(ECONNREFUSED) E(ECONNRESET) E(ESTALE) E(EDQUOT)
	E(ECANCELED) E(ENOMEDIUM) E(EUCLEAN)
#undef E
	default: return "EIO";
	}
}

/* ------------------------------------------------------------------ */
/* growable byte buffer: data is p[off..len)                           */

struct buf {
	char *p;
	size_t off, len, cap;
};

static size_t buf_used(const struct buf *b) { return b->len - b->off; }

static int buf_reserve(struct buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= extra)
			return 0;
	}
	size_t need = b->len + extra, nc = b->cap ? b->cap : 4096;
	while (nc < need)
		nc *= 2;
	char *np = realloc(b->p, nc);
	if (!np)
		return -1;
	b->p = np;
	b->cap = nc;
	return 0;
}

static int buf_put(struct buf *b, const void *s, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* Drops consumed bytes; gives memory back when a big buffer is empty. */
static void buf_settle(struct buf *b)
{
	if (b->off == b->len) {
		b->off = b->len = 0;
		if (b->cap > CHUNK)
			buf_free(b);
	}
}

/* ------------------------------------------------------------------ */
/* JSON parsing (headers only: at most 64 KiB)                         */

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jnode {
	int type, next, child;
	const char *key, *s; /* decoded, NUL-terminated */
	size_t klen, slen;
	double d;
	int64_t i;
	bool isint;
};

struct jdoc {
	struct jnode *n;
	int cnt, cap, depth;
	char *sb; /* decoded strings; never needs more than the input length + 1 */
	size_t sbl;
	const char *p, *e;
};

static void jfree(struct jdoc *d)
{
	free(d->n);
	free(d->sb);
	d->n = NULL;
	d->sb = NULL;
}

static int jnew(struct jdoc *d, int type)
{
	if (d->cnt == d->cap) {
		int nc = d->cap ? d->cap * 2 : 32;
		struct jnode *nn = realloc(d->n, (size_t)nc * sizeof *nn);
		if (!nn)
			return -1;
		d->n = nn;
		d->cap = nc;
	}
	struct jnode *x = &d->n[d->cnt];
	memset(x, 0, sizeof *x);
	x->type = type;
	x->next = x->child = -1;
	return d->cnt++;
}

static void jws(struct jdoc *d)
{
	while (d->p < d->e && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
		d->p++;
}

static int jhex4(const char *p, const char *e)
{
	if (e - p < 4)
		return -1;
	int v = 0;
	for (int k = 0; k < 4; k++) {
		char c = p[k];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= c - '0';
		else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
		else return -1;
	}
	return v;
}

static int jstring(struct jdoc *d, const char **out, size_t *outlen)
{
	const char *p = d->p + 1, *e = d->e; /* skip the opening quote */
	char *start = d->sb + d->sbl, *w = start;
	while (p < e) {
		unsigned char c = (unsigned char)*p++;
		if (c == '"') {
			*w = 0;
			*out = start;
			*outlen = (size_t)(w - start);
			d->sbl += (size_t)(w - start) + 1;
			d->p = p;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			*w++ = (char)c;
			continue;
		}
		if (p >= e)
			return -1;
		c = (unsigned char)*p++;
		switch (c) {
		case '"': case '\\': case '/': *w++ = (char)c; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u': {
			int cp = jhex4(p, e);
			if (cp < 0)
				return -1;
			p += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				int lo = (e - p >= 6 && p[0] == '\\' && p[1] == 'u') ? jhex4(p + 2, e) : -1;
				if (lo >= 0xDC00 && lo <= 0xDFFF) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					p += 6;
				} else {
					cp = 0xFFFD;
				}
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				cp = 0xFFFD;
			}
			if (cp < 0x80) {
				*w++ = (char)cp;
			} else if (cp < 0x800) {
				*w++ = (char)(0xC0 | cp >> 6);
				*w++ = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				*w++ = (char)(0xE0 | cp >> 12);
				*w++ = (char)(0x80 | (cp >> 6 & 0x3F));
				*w++ = (char)(0x80 | (cp & 0x3F));
			} else {
				*w++ = (char)(0xF0 | cp >> 18);
				*w++ = (char)(0x80 | (cp >> 12 & 0x3F));
				*w++ = (char)(0x80 | (cp >> 6 & 0x3F));
				*w++ = (char)(0x80 | (cp & 0x3F));
			}
			break;
		}
		default:
			return -1;
		}
	}
	return -1;
}

static bool isdig(char c) { return c >= '0' && c <= '9'; }

static int jnumber(struct jdoc *d, int idx)
{
	const char *s = d->p, *p = s, *e = d->e;
	bool isint = true;
	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0') {
		p++;
	} else if (p < e && *p >= '1' && *p <= '9') {
		while (p < e && isdig(*p))
			p++;
	} else {
		return -1;
	}
	if (p < e && *p == '.') {
		isint = false;
		p++;
		if (p >= e || !isdig(*p))
			return -1;
		while (p < e && isdig(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		isint = false;
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !isdig(*p))
			return -1;
		while (p < e && isdig(*p))
			p++;
	}
	char tmp[320];
	size_t n = (size_t)(p - s);
	if (n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	struct jnode *x = &d->n[idx];
	x->d = strtod(tmp, NULL);
	if (isint) {
		const char *q = tmp;
		bool neg = *q == '-';
		if (neg)
			q++;
		uint64_t v = 0;
		for (; *q; q++) {
			unsigned dg = (unsigned)(*q - '0');
			if (v > (UINT64_C(9223372036854775808) - dg) / 10) {
				isint = false;
				break;
			}
			v = v * 10 + dg;
		}
		if (isint && !neg && v > INT64_MAX)
			isint = false;
		if (isint)
			x->i = neg ? (int64_t)(0 - v) : (int64_t)v;
	}
	x->isint = isint;
	d->p = p;
	return 0;
}

static int jvalue(struct jdoc *d)
{
	jws(d);
	if (d->p >= d->e || ++d->depth > 64)
		return -1;
	int idx = -1;
	char c = *d->p;
	if (c == '{' || c == '[') {
		bool obj = c == '{';
		idx = jnew(d, obj ? J_OBJ : J_ARR);
		if (idx < 0)
			return -1;
		d->p++;
		jws(d);
		if (d->p < d->e && *d->p == (obj ? '}' : ']')) {
			d->p++;
			d->depth--;
			return idx;
		}
		int last = -1;
		for (;;) {
			const char *key = NULL;
			size_t klen = 0;
			if (obj) {
				jws(d);
				if (d->p >= d->e || *d->p != '"' || jstring(d, &key, &klen) < 0)
					return -1;
				jws(d);
				if (d->p >= d->e || *d->p != ':')
					return -1;
				d->p++;
			}
			int ch = jvalue(d);
			if (ch < 0)
				return -1;
			d->n[ch].key = key;
			d->n[ch].klen = klen;
			if (last < 0)
				d->n[idx].child = ch;
			else
				d->n[last].next = ch;
			last = ch;
			jws(d);
			if (d->p >= d->e)
				return -1;
			if (*d->p == ',') {
				d->p++;
				continue;
			}
			if (*d->p != (obj ? '}' : ']'))
				return -1;
			d->p++;
			break;
		}
	} else if (c == '"') {
		idx = jnew(d, J_STR);
		if (idx < 0)
			return -1;
		const char *s;
		size_t sl;
		if (jstring(d, &s, &sl) < 0)
			return -1;
		d->n[idx].s = s;
		d->n[idx].slen = sl;
	} else if (c == '-' || isdig(c)) {
		idx = jnew(d, J_NUM);
		if (idx < 0 || jnumber(d, idx) < 0)
			return -1;
	} else {
		static const struct { const char *w; int t; } lits[] = {
			{"true", J_TRUE}, {"false", J_FALSE}, {"null", J_NULL}};
		for (size_t k = 0; k < 3 && idx < 0; k++) {
			size_t l = strlen(lits[k].w);
			if ((size_t)(d->e - d->p) >= l && !memcmp(d->p, lits[k].w, l)) {
				idx = jnew(d, lits[k].t);
				if (idx < 0)
					return -1;
				d->p += l;
			}
		}
		if (idx < 0)
			return -1;
	}
	d->depth--;
	return idx;
}

static int jparse(struct jdoc *d, const char *s, size_t n)
{
	memset(d, 0, sizeof *d);
	d->sb = malloc(n + 1);
	if (!d->sb)
		return -1;
	d->p = s;
	d->e = s + n;
	if (jvalue(d) != 0)
		return -1;
	jws(d);
	return d->p == d->e ? 0 : -1;
}

/* Member of object `obj` named `key` (the last one if repeated), or -1. */
static int jget(const struct jdoc *d, int obj, const char *key)
{
	size_t kl = strlen(key);
	int found = -1;
	for (int c = d->n[obj].child; c >= 0; c = d->n[c].next)
		if (d->n[c].klen == kl && !memcmp(d->n[c].key, key, kl))
			found = c;
	return found;
}

/* get_*: 1 = present, 0 = absent or null, -1 = wrong type. */
static int get_str(const struct jdoc *d, const char *key, const char **s, size_t *l)
{
	int i = jget(d, 0, key);
	if (i < 0 || d->n[i].type == J_NULL)
		return 0;
	if (d->n[i].type != J_STR)
		return -1;
	*s = d->n[i].s;
	*l = d->n[i].slen;
	return 1;
}

static int get_bool(const struct jdoc *d, const char *key, bool *out)
{
	int i = jget(d, 0, key);
	if (i < 0 || d->n[i].type == J_NULL)
		return 0;
	if (d->n[i].type != J_TRUE && d->n[i].type != J_FALSE)
		return -1;
	*out = d->n[i].type == J_TRUE;
	return 1;
}

static int get_int(const struct jdoc *d, const char *key, int64_t *out)
{
	int i = jget(d, 0, key);
	if (i < 0 || d->n[i].type == J_NULL)
		return 0;
	const struct jnode *x = &d->n[i];
	if (x->type != J_NUM)
		return -1;
	if (x->isint) {
		*out = x->i;
		return 1;
	}
	/* integral decimals/exponents (5e3, 2.0) are accepted */
	if (x->d != x->d || x->d < -9.2e18 || x->d > 9.2e18 || (double)(int64_t)x->d != x->d)
		return -1;
	*out = (int64_t)x->d;
	return 1;
}

/* ------------------------------------------------------------------ */
/* JSON output: header scratch buffer                                  */

static struct buf g_hb;
static bool g_hb_oom;

static void hb_put(const void *s, size_t n)
{
	if (buf_put(&g_hb, s, n) < 0)
		g_hb_oom = true;
}

static void hb_lit(const char *s) { hb_put(s, strlen(s)); }

static void hb_int(int64_t v)
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
static void hb_esc(const char *s, size_t n)
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

static void hb_str(const char *s, size_t n)
{
	hb_lit("\"");
	hb_esc(s, n);
	hb_lit("\"");
}

static void hb_begin(const char *ev, uint32_t id)
{
	g_hb.off = g_hb.len = 0;
	g_hb_oom = false;
	hb_lit("{\"ev\":\"");
	hb_lit(ev);
	hb_lit("\",\"id\":");
	hb_int(id);
}

static void hb_key(const char *k)
{
	hb_lit(",\"");
	hb_lit(k);
	hb_lit("\":");
}

static void hb_kint(const char *k, int64_t v) { hb_key(k); hb_int(v); }

/* ------------------------------------------------------------------ */
/* objects                                                             */

enum { W_LISTEN = 1, W_SIG, W_CONN, W_OUT, W_ERR, W_IN, W_ERRP };

struct watch {
	int kind;
	void *obj;
};

enum { S_READ = 1, S_LIST, S_WRITE };

struct stream {
	struct stream *next;
	int kind;
	uint32_t id;
	int fd;
	DIR *dir;
	int64_t remaining; /* read: bytes still wanted, < 0 = to EOF */
	int64_t done;      /* bytes sent / written, or entries listed */
};

struct exec;

struct conn {
	struct conn *next;
	int fd;
	uint32_t events;     /* registered epoll events */
	bool dead;           /* fd closed, waiting to be freed */
	bool broken;         /* out of memory: destroy at the end of the tick */
	bool closing;        /* protocol error: flush, then close */
	bool in_paused;      /* an exec's stdin queue is full */
	bool needs_input;    /* buffered frames to parse after a pause */
	bool pipes_paused;   /* exec output not read: too much unsent */
	struct exec *in_blocker;
	int64_t close_deadline;
	struct buf in, out;
	struct stream *streams;
	struct watch w;
};

struct exec {
	struct exec *next;
	struct conn *conn; /* NULL once the connection is gone */
	uint32_t id;
	pid_t pid;
	int in_fd, out_fd, err_fd, errp_fd;
	bool in_reg, out_reg, err_reg;
	bool started, keepalive, timed_out, stdin_eof, dead;
	int64_t deadline; /* 0 = none */
	int64_t start_due; /* 0: the errpipe is watched (see START_HOLD_MS) */
	struct buf in_pend;
	char *argv0, *cwd; /* for the error message until started */
	struct watch w_out, w_err, w_in, w_errp;
};

static int g_ep = -1, g_rootfd = -1, g_sigfd = -1, g_lfd = -1, g_vfd = -1;
static const char *g_sockpath;
static bool g_shutdown;
static int64_t g_shutdown_deadline, g_listen_resume, g_now;
static struct conn *g_conns, *g_dead_conns;
static struct exec *g_execs, *g_dead_execs;
static struct watch g_w_listen = {W_LISTEN, &g_lfd}, g_w_vlisten = {W_LISTEN, &g_vfd};
static struct watch g_w_sig = {W_SIG, NULL};

static int ep_ctl(int op, int fd, uint32_t events, struct watch *w)
{
	struct epoll_event ev;
	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = w;
	return epoll_ctl(g_ep, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev);
}

static bool usable(const struct conn *c) { return c && !c->dead && !c->broken; }

/* Frames g_hb (closing it with '}') and payload into c's output. */
static void conn_send(struct conn *c, const void *payload, size_t plen)
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

static void send_simple(struct conn *c, const char *ev, uint32_t id)
{
	hb_begin(ev, id);
	conn_send(c, NULL, 0);
}

/* error with code = errno name; message = msg or strerror, then ": path". */
static void send_error(struct conn *c, uint32_t id, int err, const char *msg, const char *path)
{
	char se[128];
	if (!msg) {
		snprintf(se, sizeof se, "%s", strerror(err));
		if (se[0] >= 'A' && se[0] <= 'Z' && se[1] >= 'a' && se[1] <= 'z')
			se[0] = (char)(se[0] - 'A' + 'a');
		msg = se;
	}
	hb_begin("error", id);
	hb_key("code");
	hb_str(errname(err), strlen(errname(err)));
	hb_key("message");
	hb_lit("\"");
	hb_esc(msg, strlen(msg));
	if (path) {
		size_t pl = strlen(path);
		hb_lit(": ");
		hb_esc(path, pl > MSG_PATH_MAX ? MSG_PATH_MAX : pl);
		if (pl > MSG_PATH_MAX)
			hb_lit("...");
	}
	hb_lit("\"");
	conn_send(c, NULL, 0);
}

/*
 * Reads up to max bytes of fd straight into a new frame {"ev":ev,"id":id}
 * at the end of c's output. Returns the byte count, 0 at EOF, -1 + errno.
 */
static ssize_t frame_read(struct conn *c, const char *ev, uint32_t id, int fd, size_t max)
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

/* ------------------------------------------------------------------ */
/* execs                                                               */

static int kill_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) == 0)
		return 0;
	/* the child may not have called setsid() yet */
	if (errno == ESRCH && kill(pid, sig) == 0)
		return 0;
	return errno;
}

static struct exec *find_exec(const struct conn *c, uint32_t id)
{
	for (struct exec *e = g_execs; e; e = e->next)
		if (e->conn == c && e->id == id)
			return e;
	return NULL;
}

/* Registers or unregisters the output pipes according to backpressure.
 * Paused pipes are removed from epoll (a hung-up pipe would otherwise keep
 * reporting EPOLLHUP). */
static void exec_update_pipes(struct exec *e)
{
	bool want = e->started && !(e->conn && e->conn->pipes_paused);
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

static void conn_set_pipes_paused(struct conn *c, bool paused)
{
	if (c->pipes_paused == paused)
		return;
	c->pipes_paused = paused;
	for (struct exec *e = g_execs; e; e = e->next)
		if (e->conn == c)
			exec_update_pipes(e);
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

static void conn_unblock(struct conn *c)
{
	c->in_blocker = NULL;
	c->in_paused = false;
	c->needs_input = true; /* frames already read are parsed at the end of the tick */
}

static void exec_close_stdin(struct exec *e)
{
	if (e->in_reg)
		ep_ctl(EPOLL_CTL_DEL, e->in_fd, 0, NULL);
	e->in_reg = false;
	xclose(&e->in_fd);
	buf_free(&e->in_pend);
	if (e->conn && e->conn->in_blocker == e)
		conn_unblock(e->conn);
}

/* Writes queued stdin; closes it at EOF or when the child closed its end. */
static void exec_pump_stdin(struct exec *e)
{
	if (e->in_fd < 0)
		return;
	while (buf_used(&e->in_pend)) {
		ssize_t w = write(e->in_fd, e->in_pend.p + e->in_pend.off, buf_used(&e->in_pend));
		if (w > 0) {
			e->in_pend.off += (size_t)w;
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
	if (e->conn && e->conn->in_blocker == e && buf_used(&e->in_pend) < STDIN_HIGH / 4)
		conn_unblock(e->conn);
}

/* Frees the exec's fds and moves it to the graveyard (freed after the tick). */
static void exec_destroy(struct exec *e)
{
	if (e->conn && e->conn->in_blocker == e)
		conn_unblock(e->conn);
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
static int exec_read_pipe(struct exec *e, int which)
{
	int fd = which ? e->err_fd : e->out_fd;
	if (fd < 0)
		return 0;
	ssize_t n;
	if (usable(e->conn)) {
		n = frame_read(e->conn, which ? "stderr" : "stdout", e->id, fd, CHUNK);
		if (n > 0 && buf_used(&e->conn->out) > OUT_HIGH)
			conn_set_pipes_paused(e->conn, true);
	} else {
		char sink[8192];
		do
			n = read(fd, sink, sizeof sink);
		while (n < 0 && errno == EINTR);
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
static bool exec_check_started(struct exec *e, bool final)
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
			send_error(e->conn, e->id, rep[1], "cannot change directory", e->cwd);
		else
			send_error(e->conn, e->id, rep[1], "cannot execute", e->argv0);
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
	hb_begin("exit", e->id);
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
	conn_send(e->conn, NULL, 0);
	exec_destroy(e);
}

static void reap_all(void)
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

static void note_ignored_signals(void)
{
	for (int s = 1; s < 65; s++) {
		struct sigaction old;
		if (sigaction(s, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN && g_n_ignored < 64)
			g_ignored[g_n_ignored++] = s;
	}
}

/* What a command's child needs, on the agent's memory (the child shares it
 * until its execve: see spawn_child). */
struct spawn_args {
	char **argv, **envp, **shv;
	const char *path, *cwd;
	int in, out, err, rep;
	sigset_t oldmask;
};

/* The child, on its own stack: default signal dispositions and mask, a
 * session of its own, oom_score_adj 0 (the agent's is -1000), the pipes on
 * 0-2, then execve. Only system calls here: the memory is the agent's. */
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
	int ofd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (ofd >= 0) {
		if (write(ofd, "0", 1) < 0) { /* ignored */ }
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
static pid_t spawn_child(struct spawn_args *a)
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

static bool id_in_use(const struct conn *c, uint32_t id)
{
	if (find_exec(c, id))
		return true;
	for (const struct stream *s = c->streams; s; s = s->next)
		if (s->id == id)
			return true;
	return false;
}

static bool has_nul(const char *s, size_t l) { return memchr(s, 0, l) != NULL; }

static void op_exec(struct conn *c, uint32_t id, const struct jdoc *d)
{
	int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, rep[2] = {-1, -1};
	char **argv = NULL, **envp = NULL, **shv = NULL, *envblk = NULL;
	struct exec *e = NULL;
	const char *cmd = NULL, *cwd = "/", *envpath = g_default_path;
	size_t cmdl = 0, cwdl = 1;
	bool want_stdin = false, keepalive = false;
	int64_t timeout = 0;
	int err = 0;

	if (g_shutdown) {
		send_error(c, id, ESHUTDOWN, "the agent is shutting down", NULL);
		return;
	}
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return;
	}
	int ia = jget(d, 0, "argv"), ie = jget(d, 0, "env");
	if (ia >= 0 && d->n[ia].type == J_NULL)
		ia = -1;
	if (ie >= 0 && d->n[ie].type == J_NULL)
		ie = -1;
	int rc = get_str(d, "cmd", &cmd, &cmdl), rw = get_str(d, "cwd", &cwd, &cwdl);
	int it = jget(d, 0, "timeoutMs");
	if ((ia >= 0 && d->n[ia].type != J_ARR) || (ie >= 0 && d->n[ie].type != J_OBJ) || rc < 0 || rw < 0 ||
	    (it >= 0 && d->n[it].type != J_NUM && d->n[it].type != J_NULL) ||
	    get_bool(d, "stdin", &want_stdin) < 0 || get_bool(d, "keepAlive", &keepalive) < 0) {
		send_error(c, id, EPROTO, "malformed exec request", NULL);
		return;
	}
	if (it >= 0 && d->n[it].type == J_NUM) {
		/* any positive number; fractions round up; capped at ~31 years */
		double t = d->n[it].isint ? (double)d->n[it].i : d->n[it].d;
		if (t > 1e12)
			timeout = (int64_t)1e12;
		else if (t > 0)
			timeout = (int64_t)t + ((double)(int64_t)t < t ? 1 : 0);
	}
	if (ia < 0 && rc != 1) {
		send_error(c, id, EPROTO, "exec needs argv or cmd", NULL);
		return;
	}
	if (rw == 1 && (cwdl == 0 || cwd[0] != '/' || has_nul(cwd, cwdl))) {
		send_error(c, id, EINVAL, "cwd must be an absolute path", NULL);
		return;
	}

	/* argv */
	size_t argc = 0;
	if (ia >= 0) {
		for (int k = d->n[ia].child; k >= 0; k = d->n[k].next) {
			if (d->n[k].type != J_STR) {
				send_error(c, id, EPROTO, "argv must be an array of strings", NULL);
				return;
			}
			if (has_nul(d->n[k].s, d->n[k].slen)) {
				send_error(c, id, EINVAL, "argv holds a NUL byte", NULL);
				return;
			}
			argc++;
		}
		if (!argc) {
			send_error(c, id, EINVAL, "argv is empty", NULL);
			return;
		}
	} else {
		if (has_nul(cmd, cmdl)) {
			send_error(c, id, EINVAL, "cmd holds a NUL byte", NULL);
			return;
		}
		argc = 3;
	}
	argv = calloc(argc + 1, sizeof *argv);
	shv = calloc(argc + 2, sizeof *shv);
	if (!argv || !shv) {
		err = ENOMEM;
		goto fail;
	}
	if (ia >= 0) {
		size_t k = 0;
		for (int n = d->n[ia].child; n >= 0; n = d->n[n].next)
			argv[k++] = (char *)d->n[n].s;
	} else {
		argv[0] = "/bin/sh";
		argv[1] = "-c";
		argv[2] = (char *)cmd;
	}
	shv[0] = "/bin/sh";
	for (size_t k = 1; k < argc; k++)
		shv[k + 1] = argv[k];

	/* environment: "K=V" strings in one block, PATH and HOME defaulted */
	size_t envc = 0, envsz = 0;
	bool has_path = false, has_home = false;
	if (ie >= 0) {
		for (int k = d->n[ie].child; k >= 0; k = d->n[k].next) {
			const struct jnode *x = &d->n[k];
			if (x->type != J_STR) {
				send_error(c, id, EPROTO, "env values must be strings", NULL);
				goto out;
			}
			if (!x->klen || memchr(x->key, '=', x->klen) || has_nul(x->key, x->klen) || has_nul(x->s, x->slen)) {
				send_error(c, id, EINVAL, "bad env variable name or value", NULL);
				goto out;
			}
			envc++;
			envsz += x->klen + x->slen + 2;
		}
	}
	envp = calloc(envc + 3, sizeof *envp);
	envblk = malloc(envsz + sizeof "PATH=" + strlen(g_default_path) + sizeof "HOME=/root");
	if (!envp || !envblk) {
		err = ENOMEM;
		goto fail;
	}
	{
		char *w = envblk;
		size_t k = 0;
		if (ie >= 0) {
			for (int n = d->n[ie].child; n >= 0; n = d->n[n].next) {
				const struct jnode *x = &d->n[n];
				/* a repeated key: the last one wins, like JSON.parse */
				if (jget(d, ie, x->key) != n)
					continue;
				envp[k++] = w;
				memcpy(w, x->key, x->klen);
				w += x->klen;
				*w++ = '=';
				memcpy(w, x->s, x->slen + 1);
				w += x->slen + 1;
				if (x->klen == 4 && !memcmp(x->key, "PATH", 4)) {
					has_path = true;
					envpath = x->s;
				}
				if (x->klen == 4 && !memcmp(x->key, "HOME", 4))
					has_home = true;
			}
		}
		if (!has_path) {
			envp[k++] = w;
			w += sprintf(w, "PATH=%s", g_default_path) + 1;
		}
		if (!has_home) {
			envp[k++] = w;
			memcpy(w, "HOME=/root", sizeof "HOME=/root");
		}
	}

	/* pipes: parent ends non-blocking; every fd close-on-exec */
	if (want_stdin) {
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
	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
		goto fail_errno;
	if ((in_pipe[1] >= 0 && set_nonblock(in_pipe[1]) < 0) || set_nonblock(out_pipe[0]) < 0 ||
	    set_nonblock(err_pipe[0]) < 0 || set_nonblock(rep[0]) < 0)
		goto fail_errno;
	e = calloc(1, sizeof *e);
	if (!e) {
		err = ENOMEM;
		goto fail;
	}
	e->argv0 = strdup(argv[0]);
	e->cwd = strndup(cwd, cwdl);
	if (!e->argv0 || !e->cwd) {
		err = ENOMEM;
		goto fail;
	}

	struct spawn_args sa = {
		.argv = argv, .envp = envp, .path = envpath, .shv = shv, .cwd = e->cwd,
		.in = in_pipe[0], .out = out_pipe[1], .err = err_pipe[1], .rep = rep[1],
	};
	pid_t pid = spawn_child(&sa);
	if (pid < 0)
		goto fail_errno;

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
	e->keepalive = keepalive;
	e->deadline = timeout > 0 ? g_now + timeout : 0;
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
		free(e);
	}
	for (int k = 0; k < 2; k++) {
		xclose(&in_pipe[k]);
		xclose(&out_pipe[k]);
		xclose(&err_pipe[k]);
		xclose(&rep[k]);
	}
out:
	free(argv);
	free(shv);
	free(envp);
	free(envblk);
}

static void op_stdin(struct conn *c, uint32_t id, const struct jdoc *d, const char *pl, size_t pll)
{
	struct exec *e = find_exec(c, id);
	bool eof = false;
	if (get_bool(d, "eof", &eof) < 0) {
		send_error(c, id, EPROTO, "eof must be a boolean", NULL);
		return;
	}
	if (!e || e->in_fd < 0 || e->stdin_eof)
		return; /* dropped, as documented */
	if (pll && buf_put(&e->in_pend, pl, pll) < 0) {
		c->broken = true;
		return;
	}
	if (eof)
		e->stdin_eof = true;
	exec_pump_stdin(e);
	if (e->in_fd >= 0 && buf_used(&e->in_pend) > STDIN_HIGH) {
		c->in_paused = true;
		c->in_blocker = e;
	}
}

static void op_signal(struct conn *c, uint32_t id, const struct jdoc *d)
{
	int64_t target = 0, sig = 0;
	if (get_int(d, "target", &target) != 1 || get_int(d, "signal", &sig) != 1) {
		send_error(c, id, EPROTO, "signal needs integer target and signal", NULL);
		return;
	}
	if (sig < 0 || sig > 64) {
		send_error(c, id, EINVAL, "bad signal number", NULL);
		return;
	}
	struct exec *e = (target >= 1 && target <= INT32_MAX) ? find_exec(c, (uint32_t)target) : NULL;
	if (!e) {
		send_error(c, id, ESRCH, "no such exec", NULL);
		return;
	}
	int err = kill_group(e->pid, (int)sig);
	if (err)
		send_error(c, id, err, "cannot signal the process group", NULL);
	else
		send_simple(c, "ok", id);
}

/* ------------------------------------------------------------------ */
/* files                                                               */

static int ropen(const char *path, int flags, mode_t mode)
{
	struct corral_open_how how;
	memset(&how, 0, sizeof how);
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.mode = (flags & O_CREAT) ? (mode & 07777) : 0;
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	for (int tries = 0;; tries++) {
		long r = syscall(SYS_openat2, g_rootfd, path, &how, sizeof how);
		if (r >= 0)
			return (int)r;
		/* EAGAIN: a concurrent rename raced the ".." check; retry a bit */
		if (errno == EINTR || (errno == EAGAIN && tries < 16))
			continue;
		return -1;
	}
}

/* Validates a request path. Sends the error and returns false if bad. */
static bool get_path(struct conn *c, uint32_t id, const struct jdoc *d, const char **out)
{
	const char *p;
	size_t l;
	int r = get_str(d, "path", &p, &l);
	if (r != 1) {
		send_error(c, id, EPROTO, "path must be a string", NULL);
		return false;
	}
	if (!l || p[0] != '/' || has_nul(p, l)) {
		send_error(c, id, EINVAL, "path must be absolute and hold no NUL", NULL);
		return false;
	}
	if (l >= PATH_MAX) {
		send_error(c, id, ENAMETOOLONG, NULL, NULL);
		return false;
	}
	*out = p;
	return true;
}

/* Splits an absolute path into a parent path and the last component.
 * Returns NULL for ENOMEM; *base == NULL when the path is the root. */
static char *split_path(const char *path, const char **parent, const char **base)
{
	char *dup = strdup(path);
	if (!dup)
		return NULL;
	size_t l = strlen(dup);
	while (l > 1 && dup[l - 1] == '/')
		dup[--l] = 0;
	char *sl = strrchr(dup, '/');
	if (!sl[1]) { /* only slashes */
		*parent = "/";
		*base = NULL;
		return dup;
	}
	*base = sl + 1;
	if (sl == dup) {
		*parent = "/";
	} else {
		*sl = 0;
		*parent = dup;
	}
	return dup;
}

/* mkdir -p, one component at a time: each prefix is opened through the
 * sandbox root and the missing directory created with mkdirat() in its
 * parent's fd. Returns 0 or an errno. */
static int mkdir_p(const char *path, mode_t last_mode)
{
	size_t pl = strlen(path);
	char *pre = malloc(pl + 2);
	if (!pre)
		return ENOMEM;
	int err = 0, pfd = ropen("/", O_PATH | O_DIRECTORY, 0);
	if (pfd < 0) {
		err = errno;
		goto out;
	}
	size_t i = 0, prel = 0;
	for (;;) {
		while (path[i] == '/')
			i++;
		if (!path[i])
			break;
		size_t j = i;
		while (path[j] && path[j] != '/')
			j++;
		size_t k = j;
		while (path[k] == '/')
			k++;
		bool last = !path[k];
		char name[NAME_MAX + 1];
		if (j - i > NAME_MAX) {
			err = ENAMETOOLONG;
			goto out;
		}
		memcpy(name, path + i, j - i);
		name[j - i] = 0;
		pre[prel++] = '/';
		memcpy(pre + prel, name, j - i + 1);
		prel += j - i;
		int fd = ropen(pre, O_PATH | O_DIRECTORY, 0);
		if (fd < 0 && errno == ENOENT) {
			if (mkdirat(pfd, name, last ? last_mode : 0755) < 0 && errno != EEXIST) {
				err = errno;
				goto out;
			}
			fd = ropen(pre, O_PATH | O_DIRECTORY, 0);
		}
		if (fd < 0) {
			err = errno;
			if (last && err == ENOTDIR)
				err = EEXIST;
			goto out;
		}
		close(pfd);
		pfd = fd;
		i = j;
	}
out:
	if (pfd >= 0)
		close(pfd);
	free(pre);
	return err;
}

static const char *ftype(mode_t m)
{
	return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

static int64_t mtime_ms(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static void stream_free(struct stream *s)
{
	if (s->dir)
		closedir(s->dir);
	else if (s->fd >= 0)
		close(s->fd);
	free(s);
}

static struct stream *stream_new(struct conn *c, int kind, uint32_t id)
{
	struct stream *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->kind = kind;
	s->id = id;
	s->fd = -1;
	s->next = c->streams;
	c->streams = s;
	return s;
}

static struct stream *find_stream(struct conn *c, uint32_t id)
{
	for (struct stream *s = c->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void stream_remove(struct conn *c, struct stream *s)
{
	for (struct stream **pp = &c->streams; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	stream_free(s);
}

static void op_write(struct conn *c, uint32_t id, const struct jdoc *d)
{
	const char *path;
	int64_t mode = 0644;
	bool append = false, mkdirs = false;
	if (!get_path(c, id, d, &path))
		return;
	if (get_int(d, "mode", &mode) < 0 || get_bool(d, "append", &append) < 0 || get_bool(d, "mkdirs", &mkdirs) < 0) {
		send_error(c, id, EPROTO, "malformed write request", NULL);
		return;
	}
	if (mode < 0 || mode > 07777) {
		send_error(c, id, EINVAL, "bad mode", NULL);
		return;
	}
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return;
	}
	if (mkdirs) {
		const char *parent, *base;
		char *dup = split_path(path, &parent, &base);
		if (!dup) {
			send_error(c, id, ENOMEM, NULL, path);
			return;
		}
		int err = base ? mkdir_p(parent, 0755) : 0;
		free(dup);
		if (err) {
			send_error(c, id, err, "cannot create parent directories", path);
			return;
		}
	}
	int fd = ropen(path, O_WRONLY | O_CREAT | O_NONBLOCK | (append ? O_APPEND : O_TRUNC), (mode_t)mode);
	if (fd < 0) {
		send_error(c, id, errno, NULL, path);
		return;
	}
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0)
		err = errno;
	else if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
		err = EINVAL;
	else if (S_ISREG(st.st_mode)) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			err = errno;
	}
	struct stream *s = err ? NULL : stream_new(c, S_WRITE, id);
	if (!s) {
		close(fd);
		send_error(c, id, err ? err : ENOMEM, NULL, path);
		return;
	}
	s->fd = fd;
}

static void op_data(struct conn *c, uint32_t id, const char *pl, size_t pll)
{
	struct stream *s = find_stream(c, id);
	if (!s || s->kind != S_WRITE)
		return; /* after an error: ignored */
	if (write_full(s->fd, pl, pll) < 0) {
		send_error(c, id, errno, "write failed", NULL);
		stream_remove(c, s);
		return;
	}
	s->done += (int64_t)pll;
}

static void op_end(struct conn *c, uint32_t id)
{
	struct stream *s = find_stream(c, id);
	if (!s || s->kind != S_WRITE)
		return;
	int64_t size = s->done;
	int fd = s->fd;
	s->fd = -1;
	stream_remove(c, s);
	if (close(fd) < 0 && errno != EINTR) { /* NFS and friends report late errors here */
		send_error(c, id, errno, "close failed", NULL);
		return;
	}
	hb_begin("ok", id);
	hb_kint("size", size);
	conn_send(c, NULL, 0);
}

static void op_read(struct conn *c, uint32_t id, const struct jdoc *d)
{
	const char *path;
	int64_t off = 0, len = -1;
	if (!get_path(c, id, d, &path))
		return;
	if (get_int(d, "offset", &off) < 0 || get_int(d, "length", &len) < 0) {
		send_error(c, id, EPROTO, "offset and length must be integers", NULL);
		return;
	}
	if (off < 0) {
		send_error(c, id, EINVAL, "negative offset", NULL);
		return;
	}
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return;
	}
	int fd = ropen(path, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		send_error(c, id, errno, NULL, path);
		return;
	}
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0)
		err = errno;
	else if (S_ISDIR(st.st_mode))
		err = EISDIR;
	else if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
		err = EINVAL;
	else if (off > 0 && lseek(fd, (off_t)off, SEEK_SET) < 0)
		err = errno;
	struct stream *s = err ? NULL : stream_new(c, S_READ, id);
	if (!s) {
		close(fd);
		send_error(c, id, err ? err : ENOMEM, NULL, path);
		return;
	}
	s->fd = fd;
	s->remaining = len < 0 ? -1 : len;
}

static void op_list(struct conn *c, uint32_t id, const struct jdoc *d)
{
	const char *path;
	if (!get_path(c, id, d, &path))
		return;
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return;
	}
	int fd = ropen(path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		send_error(c, id, errno, NULL, path);
		return;
	}
	DIR *dir = fdopendir(fd);
	if (!dir) {
		send_error(c, id, errno, NULL, path);
		close(fd);
		return;
	}
	struct stream *s = stream_new(c, S_LIST, id);
	if (!s) {
		closedir(dir);
		send_error(c, id, ENOMEM, NULL, path);
		return;
	}
	s->dir = dir;
}

/* One step of a read or list stream. Returns false when it has ended. */
static bool stream_pump(struct conn *c, struct stream *s)
{
	if (s->kind == S_READ) {
		size_t want = CHUNK;
		if (s->remaining >= 0 && (int64_t)want > s->remaining)
			want = (size_t)s->remaining;
		ssize_t n = want ? frame_read(c, "data", s->id, s->fd, want) : 0;
		if (n > 0) {
			s->done += n;
			if (s->remaining >= 0)
				s->remaining -= n;
			return true;
		}
		if (n < 0) {
			send_error(c, s->id, errno, "read failed", NULL);
			return false;
		}
		hb_begin("end", s->id);
		hb_kint("size", s->done);
		conn_send(c, NULL, 0);
		return false;
	}
	/* S_LIST */
	errno = 0;
	struct dirent *de = readdir(s->dir);
	if (!de) {
		if (errno) {
			send_error(c, s->id, errno, "readdir failed", NULL);
		} else {
			hb_begin("end", s->id);
			hb_kint("count", s->done);
			conn_send(c, NULL, 0);
		}
		return false;
	}
	const char *nm = de->d_name;
	if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
		return true;
	struct stat st;
	if (fstatat(dirfd(s->dir), nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return true; /* removed meanwhile */
		memset(&st, 0, sizeof st);
		st.st_mode = de->d_type == DT_DIR ? S_IFDIR : de->d_type == DT_REG ? S_IFREG
			   : de->d_type == DT_LNK ? S_IFLNK : 0;
	}
	hb_begin("entry", s->id);
	hb_key("name");
	hb_str(nm, strlen(nm));
	hb_key("type");
	hb_str(ftype(st.st_mode), strlen(ftype(st.st_mode)));
	hb_kint("size", (int64_t)st.st_size);
	hb_kint("mode", st.st_mode & 07777);
	hb_kint("mtimeMs", mtime_ms(&st));
	conn_send(c, NULL, 0);
	s->done++;
	return true;
}

static bool has_pumpable(const struct conn *c)
{
	for (const struct stream *s = c->streams; s; s = s->next)
		if (s->kind != S_WRITE)
			return true;
	return false;
}

/* Runs read/list streams round robin while the unsent output is small. */
static void conn_pump(struct conn *c)
{
	bool progress = true;
	while (progress && usable(c) && buf_used(&c->out) < OUT_LOW) {
		progress = false;
		for (struct stream **pp = &c->streams; *pp && usable(c) && buf_used(&c->out) < OUT_LOW;) {
			struct stream *s = *pp;
			if (s->kind == S_WRITE) {
				pp = &s->next;
				continue;
			}
			progress = true;
			if (stream_pump(c, s)) {
				pp = &s->next;
			} else {
				*pp = s->next;
				stream_free(s);
			}
		}
	}
}

static void op_stat(struct conn *c, uint32_t id, const struct jdoc *d)
{
	const char *path;
	bool follow = true;
	if (!get_path(c, id, d, &path))
		return;
	if (get_bool(d, "follow", &follow) < 0) {
		send_error(c, id, EPROTO, "follow must be a boolean", NULL);
		return;
	}
	int fd = ropen(path, O_PATH | (follow ? 0 : O_NOFOLLOW), 0);
	if (fd < 0) {
		send_error(c, id, errno, NULL, path);
		return;
	}
	struct stat st;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0) {
		send_error(c, id, errno, NULL, path);
		close(fd);
		return;
	}
	char *target = NULL;
	ssize_t tl = 0;
	if (S_ISLNK(st.st_mode)) {
		target = malloc(PATH_MAX);
		if (!target || (tl = readlinkat(fd, "", target, PATH_MAX)) < 0) {
			send_error(c, id, target ? errno : ENOMEM, NULL, path);
			free(target);
			close(fd);
			return;
		}
	}
	close(fd);
	hb_begin("stat", id);
	hb_key("type");
	hb_str(ftype(st.st_mode), strlen(ftype(st.st_mode)));
	hb_kint("size", (int64_t)st.st_size);
	hb_kint("mode", st.st_mode & 07777);
	hb_kint("uid", st.st_uid);
	hb_kint("gid", st.st_gid);
	hb_kint("mtimeMs", mtime_ms(&st));
	hb_key("target");
	if (target)
		hb_str(target, (size_t)tl);
	else
		hb_lit("null");
	free(target);
	conn_send(c, NULL, 0);
}

static void op_mkdir(struct conn *c, uint32_t id, const struct jdoc *d)
{
	const char *path;
	bool parents = false;
	int64_t mode = 0755;
	if (!get_path(c, id, d, &path))
		return;
	if (get_bool(d, "parents", &parents) < 0 || get_int(d, "mode", &mode) < 0) {
		send_error(c, id, EPROTO, "malformed mkdir request", NULL);
		return;
	}
	if (mode < 0 || mode > 07777) {
		send_error(c, id, EINVAL, "bad mode", NULL);
		return;
	}
	int err = 0;
	if (parents) {
		err = mkdir_p(path, (mode_t)mode);
	} else {
		const char *parent, *base;
		char *dup = split_path(path, &parent, &base);
		if (!dup) {
			err = ENOMEM;
		} else if (!base) {
			err = EEXIST;
		} else {
			int pfd = ropen(parent, O_PATH | O_DIRECTORY, 0);
			if (pfd < 0 || mkdirat(pfd, base, (mode_t)mode) < 0)
				err = errno;
			if (pfd >= 0)
				close(pfd);
		}
		free(dup);
	}
	if (err)
		send_error(c, id, err, NULL, path);
	else
		send_simple(c, "ok", id);
}

/* Empties directory dfd and removes it from pfd. Never follows symlinks:
 * directories are opened O_NOFOLLOW relative to their parent's fd. The
 * listing is restarted after each subdirectory so only one DIR is open. */
static int rm_tree(int pfd, const char *name)
{
	int dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ELOOP || errno == ENOTDIR) /* swapped for a non-dir meanwhile */
			return unlinkat(pfd, name, 0) < 0 && errno != ENOENT ? errno : 0;
		return errno == ENOENT ? 0 : errno;
	}
	int err = 0;
	for (;;) {
		int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *dir = lfd < 0 ? NULL : fdopendir(lfd);
		if (!dir) {
			err = errno;
			if (lfd >= 0)
				close(lfd);
			break;
		}
		char *sub = NULL;
		struct dirent *de;
		for (;;) {
			errno = 0;
			de = readdir(dir);
			if (!de) {
				err = errno;
				break;
			}
			const char *nm = de->d_name;
			if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
				continue;
			bool isdir = de->d_type == DT_DIR;
			if (de->d_type == DT_UNKNOWN) {
				struct stat st;
				isdir = fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
			}
			if (isdir) {
				sub = strdup(nm);
				if (!sub)
					err = ENOMEM;
				break;
			}
			if (unlinkat(dfd, nm, 0) < 0 && errno != ENOENT) {
				err = errno;
				break;
			}
		}
		closedir(dir);
		if (err || !sub) {
			free(sub);
			break;
		}
		err = rm_tree(dfd, sub);
		free(sub);
		if (err)
			break;
	}
	close(dfd);
	if (!err && unlinkat(pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		err = errno;
	return err;
}

static void op_remove(struct conn *c, uint32_t id, const struct jdoc *d)
{
	const char *path, *parent, *base;
	bool recursive = false;
	if (!get_path(c, id, d, &path))
		return;
	if (get_bool(d, "recursive", &recursive) < 0) {
		send_error(c, id, EPROTO, "recursive must be a boolean", NULL);
		return;
	}
	char *dup = split_path(path, &parent, &base);
	int err = 0, pfd = -1;
	if (!dup) {
		err = ENOMEM;
		goto out;
	}
	if (!base) {
		err = EBUSY;
		goto out;
	}
	if (!strcmp(base, ".") || !strcmp(base, "..")) {
		struct stat a, b;
		int fd = ropen(path, O_PATH | O_DIRECTORY, 0);
		err = EINVAL;
		if (fd >= 0 && fstat(fd, &a) == 0 && fstat(g_rootfd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			err = EBUSY;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	pfd = ropen(parent, O_PATH | O_DIRECTORY, 0);
	struct stat st;
	if (pfd < 0 || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		err = errno;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(pfd, base, 0) < 0)
			err = errno;
	} else if (recursive) {
		err = rm_tree(pfd, base);
	} else if (unlinkat(pfd, base, AT_REMOVEDIR) < 0) {
		err = errno;
	}
out:
	if (pfd >= 0)
		close(pfd);
	free(dup);
	if (err)
		send_error(c, id, err, NULL, path);
	else
		send_simple(c, "ok", id);
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

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
		exec_close_stdin(e);
		if (!e->keepalive)
			kill_group(e->pid, SIGKILL);
		e->conn = NULL;
		exec_update_pipes(e);
	}
	while (c->streams) {
		struct stream *s = c->streams;
		c->streams = s->next;
		stream_free(s);
	}
	c->in_blocker = NULL;
	c->in_paused = false;
	c->pipes_paused = false;
}

static void conn_destroy(struct conn *c)
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

static void handle_frame(struct conn *c, const char *h, size_t hl, const char *pl, size_t pll)
{
	struct jdoc d;
	if (jparse(&d, h, hl) < 0 || d.n[0].type != J_OBJ) {
		jfree(&d);
		conn_protocol_error(c, "frame header is not a JSON object");
		return;
	}
	int64_t id64 = 0;
	const char *op;
	size_t opl;
	if (get_int(&d, "id", &id64) != 1 || id64 < 1 || id64 > INT32_MAX) {
		send_error(c, 0, EPROTO, "request without a valid id", NULL);
		goto out;
	}
	uint32_t id = (uint32_t)id64;
	if (get_str(&d, "op", &op, &opl) != 1) {
		send_error(c, id, EPROTO, "request without an op", NULL);
		goto out;
	}
	if (!strcmp(op, "data"))
		op_data(c, id, pl, pll);
	else if (!strcmp(op, "stdin"))
		op_stdin(c, id, &d, pl, pll);
	else if (!strcmp(op, "end"))
		op_end(c, id);
	else if (!strcmp(op, "hello")) {
		hb_begin("hello", id);
		hb_kint("version", 1);
		hb_key("agent");
		hb_str(AGENT_NAME, strlen(AGENT_NAME));
		hb_kint("pid", getpid());
		conn_send(c, NULL, 0);
	} else if (!strcmp(op, "exec"))
		op_exec(c, id, &d);
	else if (!strcmp(op, "signal"))
		op_signal(c, id, &d);
	else if (!strcmp(op, "write"))
		op_write(c, id, &d);
	else if (!strcmp(op, "read"))
		op_read(c, id, &d);
	else if (!strcmp(op, "stat"))
		op_stat(c, id, &d);
	else if (!strcmp(op, "list"))
		op_list(c, id, &d);
	else if (!strcmp(op, "mkdir"))
		op_mkdir(c, id, &d);
	else if (!strcmp(op, "remove"))
		op_remove(c, id, &d);
	else
		send_error(c, id, EPROTO, "unknown op", NULL);
out:
	jfree(&d);
}

static void conn_process_input(struct conn *c)
{
	c->needs_input = false;
	struct buf *b = &c->in;
	while (usable(c) && !c->closing && !c->in_paused) {
		size_t avail = buf_used(b);
		if (avail < 8)
			break;
		const char *p = b->p + b->off;
		uint32_t hl = get32(p), pl = get32(p + 4);
		if (hl < 1 || hl > MAX_HEADER || pl > MAX_PAYLOAD) {
			conn_protocol_error(c, "bad frame lengths");
			break;
		}
		size_t total = 8 + (size_t)hl + pl;
		if (avail < total)
			break;
		b->off += total; /* handlers do not touch c->in: p stays valid */
		handle_frame(c, p + 8, hl, p + 8 + hl, pl);
	}
	if (c->dead)
		return;
	buf_settle(b);
	if (c->in_paused && buf_used(b) == 0)
		buf_free(b);
}

static void conn_read(struct conn *c)
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
static void conn_flush(struct conn *c)
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

static struct conn *conn_new(int fd)
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

/* ------------------------------------------------------------------ */
/* main loop                                                           */

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
		if (!e->dead)
			exec_read_pipe(e, w->kind == W_ERR);
		break;
	}
	case W_IN: {
		struct exec *e = w->obj;
		if (!e->dead)
			exec_pump_stdin(e);
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
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		logmsg("corral-agent: socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
		logmsg("corral-agent: listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int listen_vsock(unsigned int port)
{
	struct corral_sockaddr_vm sa;
	memset(&sa, 0, sizeof sa);
	sa.svm_family = AF_VSOCK;
	sa.svm_cid = VMADDR_CID_ANY;
	sa.svm_port = port;
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		logmsg("corral-agent: vsock socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
		logmsg("corral-agent: listen on vsock port %u: %s", port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
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
	logmsg("usage: corral-agent [--socket PATH] [--vsock PORT] [--fd N] [--ready-fd N] [--root DIR] [--path DIRS]");
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
