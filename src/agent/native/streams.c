/*
 * corral-agent: the write, read and list streams and their flow control.
 */
#include "agent.h"

void stream_free(struct stream *s)
{
	if (s->kind == S_TCP) {
		tcp_free(s);
		return;
	}
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

/* A new stream's request: its fields, and its id not in use. False once
 * the error is sent. */
static bool stream_req(struct conn *c, uint32_t id, int op, const struct jdoc *d, struct req *r)
{
	if (!req_get(c, id, op, d, r))
		return false;
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return false;
	}
	return true;
}

/* Opens path for a new stream; -1 once the error is sent. */
static int stream_open(struct conn *c, uint32_t id, const char *path, int flags, mode_t mode)
{
	int fd = ropen(path, flags, mode);
	if (fd < 0)
		send_error(c, id, errno, NULL, path);
	return fd;
}

/* A read or list stream's request checked and its path opened with flags:
 * the fd, or -1 once the error is sent. */
static int stream_start(struct conn *c, uint32_t id, int op, const struct jdoc *d, struct req *r, int flags)
{
	return stream_req(c, id, op, d, r) ? stream_open(c, id, r->path, flags, 0) : -1;
}

/* The stream on fd, unless err (what checking fd found) or no memory:
 * then fd is closed and the error sent. */
static struct stream *stream_attach(struct conn *c, int kind, uint32_t id, int fd, int err, const char *path)
{
	struct stream *s = err ? NULL : stream_new(c, kind, id);
	if (!s) {
		close(fd);
		send_error(c, id, err ? err : ENOMEM, NULL, path);
		return NULL;
	}
	s->fd = fd;
	return s;
}

void op_write(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!stream_req(c, id, OP_WRITE, d, &r))
		return;
	const char *path = r.path;
	if (r.mkdirs) {
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
	int fd = stream_open(c, id, path, O_WRONLY | O_CREAT | O_NONBLOCK | (r.append ? O_APPEND : O_TRUNC), (mode_t)r.mode);
	if (fd < 0)
		return;
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
	stream_attach(c, S_WRITE, id, fd, err, path);
}

void op_data(struct conn *c, uint32_t id, const char *pl, size_t pll)
{
	struct stream *s = find_stream(c, id);
	if (s && s->kind == S_TCP) {
		tcp_data(c, s, pl, pll);
		return;
	}
	if (!s || s->kind != S_WRITE)
		return; /* after an error: ignored */
	if (write_full(s->fd, pl, pll) < 0) {
		send_error(c, id, errno, "write failed", NULL);
		stream_remove(c, s);
		return;
	}
	s->done += (int64_t)pll;
}

void op_end(struct conn *c, uint32_t id)
{
	struct stream *s = find_stream(c, id);
	if (s && s->kind == S_TCP) {
		tcp_end(s);
		return;
	}
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

void op_read(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	int fd = stream_start(c, id, OP_READ, d, &r, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return;
	const char *path = r.path;
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0)
		err = errno;
	else if (S_ISDIR(st.st_mode))
		err = EISDIR;
	else if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
		err = EINVAL;
	else if (r.offset > 0 && lseek(fd, (off_t)r.offset, SEEK_SET) < 0)
		err = errno;
	struct stream *s = stream_attach(c, S_READ, id, fd, err, path);
	if (s)
		s->remaining = r.length < 0 ? -1 : r.length;
}

void op_list(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	int fd = stream_start(c, id, OP_LIST, d, &r, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return;
	const char *path = r.path;
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

bool has_pumpable(const struct conn *c)
{
	for (const struct stream *s = c->streams; s; s = s->next)
		if ((s->kind == S_READ || s->kind == S_LIST) && !s->paused)
			return true;
	return false;
}

bool stream_set_paused(struct conn *c, uint32_t id, bool paused)
{
	struct stream *s = find_stream(c, id);
	if (!s)
		return false;
	s->paused = paused;
	if (s->kind == S_TCP)
		tcp_update_conn(c); /* its socket read on or off */
	return true;
}

/* Runs read/list streams round robin while the unsent output is small. */
void conn_pump(struct conn *c)
{
	bool progress = true;
	while (progress && usable(c) && buf_used(&c->out) < OUT_LOW) {
		progress = false;
		for (struct stream **pp = &c->streams; *pp && usable(c) && buf_used(&c->out) < OUT_LOW;) {
			struct stream *s = *pp;
			if (s->kind == S_WRITE || s->kind == S_TCP || s->paused) {
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

