/*
 * corral-agent: the path resolver for kernels without openat2 (gVisor
 * 2022-12 answers ENOSYS), with openat2's RESOLVE_IN_ROOT |
 * RESOLVE_NO_MAGICLINKS rules kept in user space:
 *
 * - every component is opened relative to the fd of the directory before
 *   it, with O_NOFOLLOW: nothing is looked up again by path, so a
 *   directory swapped for a symlink meanwhile is seen as the symlink it now
 *   is (the race of docker cp, CVE-2018-15664, needs a lookup by path);
 * - ".." pops the directories walked so far (never the root's parent), and
 *   an absolute symlink starts again from the root: the walk cannot leave
 *   the root, whatever is renamed meanwhile, since it holds only fds it
 *   reached from the root;
 * - a symlink on procfs is refused (ELOOP), magic links such as
 *   /proc/self/root or /proc/<pid>/fd/N among them (RESOLVE_NO_MAGICLINKS;
 *   /proc/self too, which openat2 would follow);
 * - at most 40 symlinks (ELOOP, as the kernel), 128 directories deep
 *   (ENAMETOOLONG), PATH_MAX in all.
 *
 * A race makes it fail (ENOTDIR, ELOOP) rather than follow: a final
 * component that turns into a symlink between its check and its open is
 * not followed.
 */
#include "agent.h"
#include <sys/statfs.h>

#define WALK_DEPTH 128
#define WALK_LINKS 40
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

bool g_resolve_walk; /* --resolver walk: this resolver even where openat2 exists (tests) */

struct walk {
	int fds[WALK_DEPTH]; /* fds[0] is g_rootfd (not ours to close) */
	int depth;
};

static int walk_top(const struct walk *w)
{
	return w->fds[w->depth];
}

static void walk_pop_to(struct walk *w, int depth)
{
	while (w->depth > depth)
		close(w->fds[w->depth--]);
}

static int walk_push(struct walk *w, int fd)
{
	if (w->depth + 1 >= WALK_DEPTH) {
		close(fd);
		errno = ENAMETOOLONG;
		return -1;
	}
	w->fds[++w->depth] = fd;
	return 0;
}

static bool on_procfs(int dirfd)
{
	struct statfs sf;
	return fstatfs(dirfd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

/* The path left to walk becomes target + rest, in buf (rest, empty or
 * starting with '/', may point into buf). */
static int splice_link(char *buf, size_t cap, const char *target, size_t tl, const char *rest)
{
	size_t rl = strlen(rest);
	if (tl + rl + 1 > cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memmove(buf + tl, rest, rl + 1);
	memcpy(buf, target, tl);
	return 0;
}

/* Follows the symlink name in the top directory: the walk goes on with its
 * target in front of what is left. */
static int follow(struct walk *w, const char *name, char *buf, size_t cap, const char *rest, int *links)
{
	if (on_procfs(walk_top(w)) || ++*links > WALK_LINKS) {
		errno = ELOOP;
		return -1;
	}
	char target[PATH_MAX];
	ssize_t tl = readlinkat(walk_top(w), name, target, sizeof target);
	if (tl < 0)
		return -1;
	if (tl == (ssize_t)sizeof target) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (target[0] == '/')
		walk_pop_to(w, 0);
	return splice_link(buf, cap, target, (size_t)tl, rest);
}

static bool is_symlink(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

int ropen_walk(const char *path, int flags, mode_t mode)
{
	struct walk w = { .fds = { g_rootfd }, .depth = 0 };
	char buf[2 * PATH_MAX];
	int links = 0, fd = -1;
	if (strlen(path) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	char *p = buf;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p) { /* the directory walked to is what was asked for */
			if (flags & O_CREAT) {
				errno = EISDIR;
				break;
			}
			fd = openat(walk_top(&w), ".", (flags & ~O_NOFOLLOW) | O_CLOEXEC);
			break;
		}
		char name[NAME_MAX + 1];
		size_t n = strcspn(p, "/");
		if (n > NAME_MAX) {
			errno = ENAMETOOLONG;
			break;
		}
		memcpy(name, p, n);
		name[n] = 0;
		char *rest = p + n;
		bool dir_wanted = *rest == '/'; /* a trailing slash, or more to walk */
		bool last = !*(rest + strspn(rest, "/"));
		if (!strcmp(name, ".")) {
			p = rest;
			continue;
		}
		if (!strcmp(name, "..")) {
			walk_pop_to(&w, w.depth > 0 ? w.depth - 1 : 0);
			p = rest;
			continue;
		}
		if (last && !dir_wanted) {
			bool excl = (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL);
			if (!(flags & O_NOFOLLOW) && !excl && is_symlink(walk_top(&w), name)) {
				if (follow(&w, name, buf, sizeof buf, rest, &links) < 0)
					break;
				p = buf;
				continue;
			}
			fd = openat(walk_top(&w), name, flags | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
			break;
		}
		int next = openat(walk_top(&w), name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			if ((errno != ENOTDIR && errno != ELOOP) || !is_symlink(walk_top(&w), name))
				break;
			if (follow(&w, name, buf, sizeof buf, rest, &links) < 0)
				break;
			p = buf;
			continue;
		}
		if (walk_push(&w, next) < 0)
			break;
		p = rest;
	}
	int saved = errno;
	walk_pop_to(&w, 0);
	errno = saved;
	return fd;
}
