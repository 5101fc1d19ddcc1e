/*
 * corral-agent: small utilities (logging, the clock, fds, errno names) and
 * the growable byte buffer.
 */
#include "agent.h"
#include "../../native/line.h"

void logmsg(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	int n = format_line(b, sizeof b, fmt, ap);
	va_end(ap);
	if (n > 0)
		write_full(2, b, (size_t)n);
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void xclose(int *fd)
{
	if (*fd >= 0) {
		close(*fd); /* never retried: Linux frees the fd even on EINTR */
		*fd = -1;
	}
}

int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

int write_full(int fd, const char *p, size_t n)
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

const char *errname(int e)
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

int buf_reserve(struct buf *b, size_t extra)
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

int buf_put(struct buf *b, const void *s, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* Drops consumed bytes; gives memory back when a big buffer is empty. */
void buf_settle(struct buf *b)
{
	if (b->off == b->len) {
		b->off = b->len = 0;
		if (b->cap > CHUNK)
			buf_free(b);
	}
}

