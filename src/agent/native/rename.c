/*
 * corral-agent: the rename op. {"path": FROM, "to": TO, "noReplace": b}
 * -> ok. Both parents are resolved inside the sandbox root (openat2
 * RESOLVE_IN_ROOT, as every path: ropen) and the rename made between
 * their fds with renameat2, so neither name can lead out of the root
 * whatever the sandbox swaps in meanwhile (CVE-2018-15664's race). The
 * last components are taken as they are: a symlink is renamed, not its
 * target. noReplace is RENAME_NOREPLACE (EEXIST when TO exists); without
 * it TO is replaced as rename(2) does. Moving the root, or onto it, or a
 * last component "." or "..", is EBUSY or EINVAL; across mounts EXDEV.
 */
#include "agent.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

/* The parent of path opened inside the root, its last component in *base
 * (pointing into *dup, which the caller frees). 0 or an errno. */
static int open_parent(const char *path, char **dup, const char **base, int *pfd)
{
	const char *parent;
	*pfd = -1;
	*dup = split_path(path, &parent, base);
	if (!*dup)
		return ENOMEM;
	if (!*base)
		return EBUSY;
	if (!strcmp(*base, ".") || !strcmp(*base, ".."))
		return EINVAL;
	*pfd = ropen(parent, O_PATH | O_DIRECTORY, 0);
	return *pfd < 0 ? errno : 0;
}

void op_rename(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_RENAME, d, &r))
		return;
	char *fdup = NULL, *tdup = NULL;
	const char *fbase, *tbase;
	int ffd = -1, tfd = -1;
	int err = open_parent(r.path, &fdup, &fbase, &ffd);
	const char *bad = r.path;
	if (!err) {
		bad = r.to;
		err = open_parent(r.to, &tdup, &tbase, &tfd);
	}
	if (!err) {
		bad = r.path;
		if (syscall(SYS_renameat2, ffd, fbase, tfd, tbase, r.noreplace ? RENAME_NOREPLACE : 0) < 0)
			err = errno;
	}
	if (ffd >= 0)
		close(ffd);
	if (tfd >= 0)
		close(tfd);
	free(fdup);
	free(tdup);
	send_ok_or_error(c, id, err, err == EEXIST ? "the destination exists" : NULL, bad);
}
