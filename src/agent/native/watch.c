/*
 * corral-agent: the watch op. inotify on a directory inside the sandbox
 * root (and, with "recursive", on every directory under it, added as they
 * appear), its events sent as they come:
 *   {"ev":"watching","id":N}   once the watches are in place
 *   {"ev":"fsevent","id":N,"type":T,"name":"sub/file","dir":false}
 *     T: create (IN_CREATE, and IN_MOVED_TO: a name moved in), write
 *     (IN_MODIFY), remove (IN_DELETE), rename (IN_MOVED_FROM: the old
 *     name), chmod (IN_ATTRIB): fsnotify's and so E2B's five kinds
 *   {"ev":"fsevent","id":N,"type":"overflow"}   events were lost
 *   {"ev":"end","id":N}   the watched directory went, or the host's end
 * Flow control is the kernel's queue: events are read only while the
 * connection has less than OUT_HIGH unsent, and a full queue
 * (max_queued_events, 16384 by default) drops events and says so with
 * IN_Q_OVERFLOW, sent as "overflow". So a flood costs the agent at most
 * OUT_HIGH plus one read, however many files change.
 */
#include "agent.h"

#define WATCH_MASK (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | \
		    IN_DELETE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

struct wdir {
	int wd;
	char *rel; /* "" for the watched directory itself */
};

struct watcher {
	struct watcher *next;
	struct conn *conn;
	uint32_t id;
	int fd;
	bool reg, recursive, dead, paused;
	char *root; /* the watched path */
	struct wdir *dirs; /* sorted by wd: inotify hands them out increasing */
	size_t ndirs, cap;
	struct watch w;
};

static struct watcher *g_watchers, *g_dead_watchers;

static struct wdir *dir_by_wd(struct watcher *w, int wd)
{
	size_t lo = 0, hi = w->ndirs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (w->dirs[mid].wd == wd)
			return &w->dirs[mid];
		if (w->dirs[mid].wd < wd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void dir_forget(struct watcher *w, struct wdir *d)
{
	free(d->rel);
	size_t k = (size_t)(d - w->dirs);
	memmove(d, d + 1, (w->ndirs - k - 1) * sizeof *d);
	w->ndirs--;
}

/* root + "/" + rel, or root alone; NULL for ENOMEM. */
static char *full_path(const struct watcher *w, const char *rel)
{
	size_t rl = strlen(w->root), ll = strlen(rel);
	char *p = malloc(rl + 1 + ll + 1);
	if (!p)
		return NULL;
	memcpy(p, w->root, rl);
	if (ll) {
		p[rl] = '/';
		memcpy(p + rl + 1, rel, ll + 1);
	} else {
		p[rl] = 0;
	}
	return p;
}

/* Watches directory rel (resolved inside the root by ropen; a symlink
 * below the watched directory is not followed). 0 or an errno. The watch
 * is added through the agent's cwd: fchdir to the resolved directory, so
 * no path is looked up again by the kernel outside openat2's rules. */
static int dir_add(struct watcher *w, const char *rel)
{
	if (w->ndirs >= WATCH_DIRS_MAX)
		return ENOSPC;
	char *path = full_path(w, rel), *copy = strdup(rel);
	if (!path || !copy) {
		free(path);
		free(copy);
		return ENOMEM;
	}
	int err = 0, fd = ropen(path, O_PATH | O_DIRECTORY | (*rel ? O_NOFOLLOW : 0), 0);
	free(path);
	int wd = -1;
	if (fd < 0 || fchdir(fd) < 0)
		err = errno;
	else if ((wd = inotify_add_watch(w->fd, ".", WATCH_MASK)) < 0)
		err = errno;
	if (fd >= 0) {
		if (chdir("/") < 0) { /* the agent's own cwd: best effort */ }
		close(fd);
	}
	struct wdir *d = err ? NULL : dir_by_wd(w, wd);
	if (err || d) { /* d: the same directory under two names, kept once */
		free(copy);
		return err;
	}
	if (w->ndirs == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 16;
		struct wdir *nd = realloc(w->dirs, nc * sizeof *nd);
		if (!nd) {
			inotify_rm_watch(w->fd, wd);
			free(copy);
			return ENOMEM;
		}
		w->dirs = nd;
		w->cap = nc;
	}
	size_t k = w->ndirs;
	while (k > 0 && w->dirs[k - 1].wd > wd)
		k--;
	memmove(&w->dirs[k + 1], &w->dirs[k], (w->ndirs - k) * sizeof *w->dirs);
	w->dirs[k] = (struct wdir){wd, copy};
	w->ndirs++;
	return 0;
}

/* Watches every directory under rel (already watched), breadth first. */
static int tree_add(struct watcher *w, const char *rel)
{
	char *start = strdup(rel);
	if (!start)
		return ENOMEM;
	/* a queue of directories to list: start, then what dir_add found */
	char **queue = NULL;
	size_t qn = 0, qcap = 0, qi = 0;
	int err = 0;
	for (char *cur = start; cur; cur = qi < qn ? queue[qi++] : NULL) {
		char *path = full_path(w, cur);
		int fd = path ? ropen(path, O_RDONLY | O_DIRECTORY | (*cur ? O_NOFOLLOW : 0), 0) : -1;
		free(path);
		DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
		if (!dir && fd >= 0)
			close(fd);
		struct dirent *de;
		while (dir && !err && (de = readdir(dir))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			struct stat st;
			if (de->d_type != DT_DIR && !(de->d_type == DT_UNKNOWN && fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)))
				continue;
			size_t cl = strlen(cur), nl = strlen(de->d_name);
			char *sub = malloc(cl + 1 + nl + 1);
			if (!sub) {
				err = ENOMEM;
				break;
			}
			if (cl) {
				memcpy(sub, cur, cl);
				sub[cl] = '/';
				memcpy(sub + cl + 1, de->d_name, nl + 1);
			} else {
				memcpy(sub, de->d_name, nl + 1);
			}
			int e = dir_add(w, sub);
			if (e == ENOENT || e == ENOTDIR || e == ELOOP) { /* gone or swapped meanwhile */
				free(sub);
				continue;
			}
			if (e) {
				err = e;
				free(sub);
				break;
			}
			if (qn == qcap) {
				size_t nc = qcap ? qcap * 2 : 16;
				char **nq = realloc(queue, nc * sizeof *nq);
				if (!nq) {
					err = ENOMEM;
					free(sub);
					break;
				}
				queue = nq;
				qcap = nc;
			}
			queue[qn++] = sub;
		}
		if (dir)
			closedir(dir);
		if (err)
			break;
	}
	free(start);
	for (size_t k = 0; k < qn; k++)
		free(queue[k]);
	free(queue);
	return err;
}

/* Stops watching rel and everything under it (a directory moved away). */
static void tree_forget(struct watcher *w, const char *rel)
{
	size_t l = strlen(rel);
	for (size_t k = 0; k < w->ndirs;) {
		struct wdir *d = &w->dirs[k];
		if (*d->rel && !strncmp(d->rel, rel, l) && (d->rel[l] == 0 || d->rel[l] == '/')) {
			inotify_rm_watch(w->fd, d->wd);
			dir_forget(w, d);
		} else {
			k++;
		}
	}
}

static void watcher_set_reg(struct watcher *w, bool want)
{
	if (w->dead || want == w->reg)
		return;
	if (ep_ctl(want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->fd, EPOLLIN, &w->w) < 0 && want) {
		logmsg("corral-agent: epoll add inotify: %s", strerror(errno));
		return;
	}
	w->reg = want;
}

static void watcher_free(struct watcher *w)
{
	for (struct watcher **pp = &g_watchers; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	watcher_set_reg(w, false);
	xclose(&w->fd);
	for (size_t k = 0; k < w->ndirs; k++)
		free(w->dirs[k].rel);
	free(w->dirs);
	free(w->root);
	w->dirs = NULL;
	w->root = NULL;
	w->dead = true;
	w->next = g_dead_watchers;
	g_dead_watchers = w;
}

static struct watcher *find_watcher(const struct conn *c, uint32_t id)
{
	for (struct watcher *w = g_watchers; w; w = w->next)
		if (w->conn == c && w->id == id)
			return w;
	return NULL;
}

bool watch_id_in_use(const struct conn *c, uint32_t id)
{
	return find_watcher(c, id) != NULL;
}

bool watch_end(struct conn *c, uint32_t id)
{
	struct watcher *w = find_watcher(c, id);
	if (!w)
		return false;
	watcher_free(w);
	send_simple(c, "end", id);
	return true;
}

void watch_drop_conn(struct conn *c)
{
	for (struct watcher *w = g_watchers, *next; w; w = next) {
		next = w->next;
		if (w->conn == c)
			watcher_free(w);
	}
}

void watch_update_conn(struct conn *c)
{
	for (struct watcher *w = g_watchers; w; w = w->next)
		if (w->conn == c)
			watcher_set_reg(w, !c->pipes_paused && !w->paused);
}

bool watch_set_paused(struct conn *c, uint32_t id, bool paused)
{
	struct watcher *w = find_watcher(c, id);
	if (!w)
		return false;
	w->paused = paused;
	watcher_set_reg(w, !c->pipes_paused && !paused);
	return true;
}

void watch_free_dead(void)
{
	while (g_dead_watchers) {
		struct watcher *w = g_dead_watchers;
		g_dead_watchers = w->next;
		free(w);
	}
}

static void send_event(struct watcher *w, const char *type, const char *rel, const char *name, bool dir)
{
	hb_begin("fsevent", w->id);
	hb_key("type");
	hb_str(type, strlen(type));
	if (name) {
		hb_key("name");
		hb_lit("\"");
		if (*rel) {
			hb_esc(rel, strlen(rel));
			hb_lit("/");
		}
		hb_esc(name, strlen(name));
		hb_lit("\"");
		hb_key("dir");
		hb_lit(dir ? "true" : "false");
	}
	conn_send(w->conn, NULL, 0);
}

static void handle_event(struct watcher *w, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		send_event(w, "overflow", "", NULL, false);
		return;
	}
	struct wdir *d = dir_by_wd(w, ev->wd);
	if (!d)
		return; /* a watch removed meanwhile */
	if (ev->mask & IN_IGNORED) {
		if (!*d->rel) { /* the watched directory itself is gone */
			send_simple(w->conn, "end", w->id);
			watcher_free(w);
			return;
		}
		dir_forget(w, d);
		return;
	}
	if (!ev->len)
		return; /* IN_DELETE_SELF: IN_IGNORED follows */
	bool isdir = ev->mask & IN_ISDIR;
	const char *type = ev->mask & (IN_CREATE | IN_MOVED_TO) ? "create" : ev->mask & IN_MODIFY ? "write"
		: ev->mask & IN_DELETE ? "remove" : ev->mask & IN_MOVED_FROM ? "rename" : ev->mask & IN_ATTRIB ? "chmod" : NULL;
	if (!type)
		return;
	send_event(w, type, d->rel, ev->name, isdir);
	if (!w->recursive || !isdir)
		return;
	size_t rl = strlen(d->rel), nl = strlen(ev->name);
	char *sub = malloc(rl + 1 + nl + 1);
	if (!sub)
		return;
	if (rl) {
		memcpy(sub, d->rel, rl);
		sub[rl] = '/';
		memcpy(sub + rl + 1, ev->name, nl + 1);
	} else {
		memcpy(sub, ev->name, nl + 1);
	}
	/* d is not used after this: the table may move */
	if (ev->mask & IN_MOVED_FROM) {
		tree_forget(w, sub);
	} else if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
		int err = dir_add(w, sub);
		if (!err)
			err = tree_add(w, sub);
		if (err == ENOSPC || err == ENOMEM) /* not all of the tree is watched: say events are lost */
			send_event(w, "overflow", "", NULL, false);
	}
	free(sub);
}

/* Reads and sends events while the connection can take them. */
void watch_read(struct watcher *w)
{
	static char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (!w->dead && usable(w->conn) && !w->conn->pipes_paused && !w->paused) {
		ssize_t n;
		do
			n = read(w->fd, buf, sizeof buf);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return;
		for (ssize_t o = 0; o < n && !w->dead;) {
			const struct inotify_event *ev = (const void *)(buf + o);
			handle_event(w, ev);
			o += (ssize_t)(sizeof *ev + ev->len);
		}
		if (!w->dead && buf_used(&w->conn->out) > OUT_HIGH)
			conn_set_pipes_paused(w->conn, true);
	}
}

void op_watch(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_WATCH, d, &r))
		return;
	if (id_in_use(c, id)) {
		send_error(c, id, EPROTO, "stream id already in use", NULL);
		return;
	}
	struct watcher *w = calloc(1, sizeof *w);
	if (!w || !(w->root = strdup(r.path))) {
		free(w);
		send_error(c, id, ENOMEM, NULL, NULL);
		return;
	}
	w->conn = c;
	w->id = id;
	w->recursive = r.recursive;
	w->w = (struct watch){W_INOTIFY, w};
	w->next = g_watchers;
	g_watchers = w;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int err = w->fd < 0 ? errno : dir_add(w, "");
	if (!err && r.recursive)
		err = tree_add(w, "");
	if (err) {
		send_error(c, id, err, err == ENOSPC ? "too many directories to watch" : "cannot watch", r.path);
		watcher_free(w);
		return;
	}
	watcher_set_reg(w, !c->pipes_paused);
	send_simple(c, "watching", id);
}
