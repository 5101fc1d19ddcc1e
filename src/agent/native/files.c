/*
 * corral-agent: stat, mkdir and remove. Every path resolves inside --root
 * through openat2 RESOLVE_IN_ROOT, or where it is missing (gVisor) under
 * the same rules by resolve.c.
 */
#include "agent.h"

int g_rootfd = -1;

/* Opens path inside g_rootfd, the kernel resolving it: "..", absolute
 * paths and symlinks (absolute or relative) cannot leave the root, whatever
 * the sandbox swaps in meanwhile (the symlink race of docker cp,
 * CVE-2018-15664), and magic links such as /proc/self/root are refused
 * (ELOOP). Without openat2 (gVisor 2022-12, Linux < 5.6) resolve.c walks
 * the path fd by fd under the same rules. */
int ropen(const char *path, int flags, mode_t mode)
{
	if (g_resolve_walk)
		return ropen_walk(path, flags, mode);
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
		if (errno == ENOSYS) {
			g_resolve_walk = true;
			return ropen_walk(path, flags, mode);
		}
		return -1;
	}
}

/* Whether openat2 resolves here: the root opened through it. gVisor 2022-12
 * has none, and its sentry, applying the sandbox's seccomp profile itself,
 * answers EPERM rather than ENOSYS; either way resolve.c does the work. */
void probe_openat2(void)
{
	if (g_resolve_walk)
		return;
	struct corral_open_how how;
	memset(&how, 0, sizeof how);
	how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	long fd = syscall(SYS_openat2, g_rootfd, ".", &how, sizeof how);
	if (fd >= 0)
		close((int)fd);
	else if (errno == ENOSYS || errno == EPERM)
		g_resolve_walk = true;
}

/* Splits an absolute path into a parent path and the last component.
 * Returns NULL for ENOMEM; *base == NULL when the path is the root. */

char *split_path(const char *path, const char **parent, const char **base)
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
int mkdir_p(const char *path, mode_t last_mode)
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

const char *ftype(mode_t m)
{
	return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

int64_t mtime_ms(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}


void op_stat(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_STAT, d, &r))
		return;
	const char *path = r.path;
	int fd = ropen(path, O_PATH | (r.follow ? 0 : O_NOFOLLOW), 0);
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

void op_mkdir(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_MKDIR, d, &r))
		return;
	const char *path = r.path;
	mode_t mode = (mode_t)r.mode;
	int err = 0;
	if (r.parents) {
		err = mkdir_p(path, mode);
	} else {
		const char *parent, *base;
		char *dup = split_path(path, &parent, &base);
		if (!dup) {
			err = ENOMEM;
		} else if (!base) {
			err = EEXIST;
		} else {
			int pfd = ropen(parent, O_PATH | O_DIRECTORY, 0);
			if (pfd < 0 || mkdirat(pfd, base, mode) < 0)
				err = errno;
			if (pfd >= 0)
				close(pfd);
		}
		free(dup);
	}
	send_ok_or_error(c, id, err, NULL, path);
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

void op_remove(struct conn *c, uint32_t id, const struct jdoc *d)
{
	const char *parent, *base;
	struct req r;
	if (!req_get(c, id, OP_REMOVE, d, &r))
		return;
	const char *path = r.path;
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
	} else if (r.recursive) {
		err = rm_tree(pfd, base);
	} else if (unlinkat(pfd, base, AT_REMOVEDIR) < 0) {
		err = errno;
	}
out:
	if (pfd >= 0)
		close(pfd);
	free(dup);
	send_ok_or_error(c, id, err, NULL, path);
}

