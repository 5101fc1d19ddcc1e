/*
 * corral-launch: prepares a container's root filesystem in a private mount
 * namespace and execs the OCI runtime there.
 *
 *   corral-launch [--unmount PATH]... [--tmpfs DIR SIZE_BYTES]
 *                 [--owned-dir DIR UID]... [--overlay LOWERS UPPER WORK TARGET]
 *                 [--ro-overlay LOWERS TARGET] [--userns BASE COUNT]
 *                 [--idmap FROM TO COUNT MNTDIR]
 *                 [--idmapped-overlay LOWERS UPPER WORK TARGET]
 *                 [--bind-beneath ROOT REL STAGE ro|rw]... [--copy-tmpfs SRC DEST]
 *                 -- RUNTIME ARGS...
 *
 * Every mount it makes lives only in the new namespace; the container's
 * mount namespace is a copy of it, so the mounts vanish with the container
 * and none can leak onto the host, whatever happens to corral.
 *
 * --unmount exists for hybrid cgroup hosts: crun refuses to run when
 * /sys/fs/cgroup/unified is mounted beside the v1 hierarchies, and within
 * this namespace it can simply be detached.
 *
 * --userns runs the command as root of a new user namespace in which host
 * ids [BASE, BASE+COUNT) are 0.. (the store's shifted layers then read as
 * owned by root). A forked helper, still privileged in the parent
 * namespace, writes the maps; no /etc/subuid entry is needed.
 *
 * --bind-beneath binds the directory REL below ROOT (a share the operator
 * allowed: runtime/shares.ts) onto STAGE, non-recursive, nosuid, nodev,
 * read-only with "ro"; a container's config.json or a VM's virtiofsd then
 * takes STAGE. The daemon resolved REL with realpath before, so it holds
 * no symlink; ROOT and REL are opened again here with openat2
 * RESOLVE_NO_SYMLINKS (and REL RESOLVE_BENEATH), and the bind is of the fd:
 * a symlink swapped into the path since the check (a sandbox writing to
 * another share of the same tree, CVE-2018-15664-style check/use races)
 * fails the open instead of binding what it points to.
 *
 * --log DIR NAME MAX (first, when given) makes stdout and stderr, of this
 * program and of everything it starts (the runtime, the container's init,
 * the agent as PID 1), a pipe that a forked drainer copies into DIR/NAME,
 * keeping the last MAX..2*MAX bytes (NAME, then NAME.1). A host file as
 * the init's stdio let a sandbox write to the host disk without limit
 * (issue 18: `dd of=/proc/1/fd/2` wrote 200 MiB from a 10 MiB sandbox).
 * The drainer is forked before anything else (it holds no mount
 * namespace of the container's), re-execs itself as `corral-launch
 * --drain MAX` (a command line without the state dir's paths) with the
 * pipe on fd 0 and DIR on fd 3, and exits when the last writer (the
 * sandbox) is gone.
 *
 * --ext4 IMAGE DIR mounts the ext4 filesystem in IMAGE on DIR (nosuid,
 * nodev) through a loop device of its own that clears itself when the
 * mount goes (LO_FLAGS_AUTOCLEAR): with the container's mount namespace,
 * as the other mounts. A persistent container's upper and work dirs live
 * in it, so what the sandbox writes is capped by the image's size (issue
 * 18: a persistent container with --disk 50M wrote 500 MiB to the host).
 *
 * --idmap makes a user namespace whose map sends ids [FROM, FROM+COUNT)
 * to [TO, TO+COUNT) (the store's layers are owned by the store's range,
 * FROM; a sandbox's own range is TO) and mounts a small tmpfs on MNTDIR.
 * --idmapped-overlay then clones each of LOWERS (open_tree), marks the
 * clone id-mapped through that namespace, read-only, nosuid and nodev
 * (mount_setattr MOUNT_ATTR_IDMAP, Linux 5.12; overlayfs takes id-mapped
 * layers since 5.19), attaches it at MNTDIR/N and stacks the overlay on
 * those: the sandbox sees the shared layers owned by its own range, and
 * no layer is copied or chowned per sandbox. Files of the layers owned by
 * ids outside the store's range read as the overflow id, as before. A
 * --bind-beneath after --idmap is id-mapped the same way.
 *
 *   corral-launch --set-hostname PID STARTTIME
 *
 * opens the UTS namespace of process PID (a container's init, whose
 * /proc/PID/stat start time must be STARTTIME), reads one
 * line on stdin, makes it that namespace's hostname and answers "ok" on
 * stdout; EOF first: exits 0 having changed nothing. A claim that names a
 * pooled container renames it so (the sandbox itself lacks CAP_SYS_ADMIN).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <grp.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

static void die(const char *what, const char *arg) {
	fprintf(stderr, "corral-launch: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
	exit(125);
}

static void write_file(const char *path, const char *text) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) die("open", path);
	ssize_t n = write(fd, text, strlen(text));
	if (n != (ssize_t)strlen(text)) die("write", path);
	close(fd);
}

/* musl ships no linux/openat2.h: what --bind-beneath uses. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
struct launch_open_how {
	unsigned long long flags, mode, resolve;
};
#define LAUNCH_RESOLVE_NO_XDEV 0x01
#define LAUNCH_RESOLVE_NO_MAGICLINKS 0x02
#define LAUNCH_RESOLVE_NO_SYMLINKS 0x04
#define LAUNCH_RESOLVE_BENEATH 0x08

/* musl has no wrappers for the new mount API: the numbers are the same on every architecture. */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
struct launch_mount_attr {
	unsigned long long attr_set, attr_clr, propagation, userns_fd;
};
#define LAUNCH_OPEN_TREE_CLONE 1
#define LAUNCH_MOVE_MOUNT_F_EMPTY_PATH 0x4
#define LAUNCH_MOUNT_ATTR_RDONLY 0x1
#define LAUNCH_MOUNT_ATTR_NOSUID 0x2
#define LAUNCH_MOUNT_ATTR_NODEV 0x4
#define LAUNCH_MOUNT_ATTR_IDMAP 0x100000

static int open_how(int dirfd, const char *path, unsigned long long resolve) {
	struct launch_open_how how = {O_PATH | O_DIRECTORY | O_CLOEXEC, 0, resolve | LAUNCH_RESOLVE_NO_SYMLINKS | LAUNCH_RESOLVE_NO_MAGICLINKS};
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static void bind_beneath(const char *root, const char *rel, const char *stage, const char *mode, int idmap_ns) {
	int ro = strcmp(mode, "ro") == 0;
	if (!ro && strcmp(mode, "rw") != 0) {
		errno = EINVAL;
		die("--bind-beneath mode (ro or rw)", mode);
	}
	int rootfd = open_how(AT_FDCWD, root, 0);
	if (rootfd < 0) die("open share root", root);
	int fd = open_how(rootfd, rel, LAUNCH_RESOLVE_BENEATH);
	if (fd < 0) die("open share below its root (a symlink in the path?)", rel);
	if (idmap_ns >= 0) {
		/* Id-mapped like the layers: files of the store's range are the
		 * sandbox's own inside, and what it writes lands in the store's
		 * range on the host (as a VM's virtiofsd writes it). */
		int tree = (int)syscall(SYS_open_tree, fd, "", LAUNCH_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH);
		if (tree < 0) die("open_tree share", rel);
		struct launch_mount_attr attr = {
			LAUNCH_MOUNT_ATTR_IDMAP | LAUNCH_MOUNT_ATTR_NOSUID | LAUNCH_MOUNT_ATTR_NODEV | (ro ? LAUNCH_MOUNT_ATTR_RDONLY : 0), 0, 0, (unsigned long long)idmap_ns};
		if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) die("mount_setattr MOUNT_ATTR_IDMAP on share (a filesystem without id-mapped mounts?)", rel);
		if (syscall(SYS_move_mount, tree, "", AT_FDCWD, stage, LAUNCH_MOVE_MOUNT_F_EMPTY_PATH) != 0) die("move_mount share to", stage);
		close(tree);
		close(fd);
		close(rootfd);
		return;
	}
	char at[64];
	snprintf(at, sizeof at, "/proc/self/fd/%d", fd);
	if (mount(at, stage, NULL, MS_BIND, NULL) != 0) die("bind share on", stage);
	if (mount(NULL, stage, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0), NULL) != 0) die("remount share", stage);
	close(fd);
	close(rootfd);
}

/* Enters a new user namespace mapping [base, base+count) to 0.. and becomes its root. */
static void enter_userns(unsigned long base, unsigned long count) {
	int go[2];
	if (pipe2(go, O_CLOEXEC) != 0) die("pipe", NULL);
	pid_t self = getpid();
	pid_t helper = fork();
	if (helper < 0) die("fork", NULL);
	if (helper == 0) {
		char c, path[64], map[96];
		close(go[1]);
		if (read(go[0], &c, 1) != 1) _exit(1);
		snprintf(map, sizeof map, "0 %lu %lu\n", base, count);
		snprintf(path, sizeof path, "/proc/%d/uid_map", (int)self);
		write_file(path, map);
		snprintf(path, sizeof path, "/proc/%d/gid_map", (int)self);
		write_file(path, map);
		_exit(0);
	}
	close(go[0]);
	if (unshare(CLONE_NEWUSER) != 0) die("unshare", "CLONE_NEWUSER");
	if (write(go[1], "x", 1) != 1) die("write", "helper pipe");
	int st;
	if (waitpid(helper, &st, 0) != helper || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		errno = EPERM;
		die("write uid/gid maps", NULL);
	}
	if (setresgid(0, 0, 0) != 0) die("setresgid", "0");
	if (setgroups(0, NULL) != 0) die("setgroups", NULL);
	if (setresuid(0, 0, 0) != 0) die("setresuid", "0");
	close(go[1]);
}


/* A user namespace (an fd on it) whose uid and gid maps are "FROM TO COUNT". */
static int idmap_userns(unsigned long from, unsigned long to, unsigned long count) {
	int ready[2], done[2];
	if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(done, O_CLOEXEC) != 0) die("pipe", NULL);
	pid_t child = fork();
	if (child < 0) die("fork", NULL);
	if (child == 0) {
		char c;
		close(ready[0]);
		close(done[1]);
		if (unshare(CLONE_NEWUSER) != 0) _exit(1);
		if (write(ready[1], "x", 1) != 1) _exit(1);
		/* Lives until the parent has opened its namespace (EOF). */
		while (read(done[0], &c, 1) > 0) {}
		_exit(0);
	}
	close(ready[1]);
	close(done[0]);
	char c, path[64], map[96];
	if (read(ready[0], &c, 1) != 1) {
		errno = ECHILD;
		die("make a user namespace for", "--idmap");
	}
	snprintf(map, sizeof map, "%lu %lu %lu\n", from, to, count);
	snprintf(path, sizeof path, "/proc/%d/uid_map", (int)child);
	write_file(path, map);
	snprintf(path, sizeof path, "/proc/%d/gid_map", (int)child);
	write_file(path, map);
	snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
	int ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0) die("open", path);
	close(done[1]);
	close(ready[0]);
	waitpid(child, NULL, 0);
	return ns;
}

/*
 * Each of the colon-separated LOWERS, id-mapped through `userns` and
 * attached at MNTDIR/N; returns those paths, colon-separated (malloc'd).
 */
static char *idmap_lowers(const char *lowers, int userns, const char *mntdir, int *next) {
	size_t cap = strlen(lowers) + 1, len = 0;
	char *out = NULL, *list = strdup(lowers), *save = NULL;
	if (!list) die("malloc", NULL);
	for (char *dir = strtok_r(list, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char at[4096];
		snprintf(at, sizeof at, "%s/%d", mntdir, (*next)++);
		if (mkdir(at, 0755) != 0) die("mkdir", at);
		int fd = (int)syscall(SYS_open_tree, AT_FDCWD, dir, LAUNCH_OPEN_TREE_CLONE | O_CLOEXEC);
		if (fd < 0) die("open_tree", dir);
		struct launch_mount_attr attr = {
			LAUNCH_MOUNT_ATTR_IDMAP | LAUNCH_MOUNT_ATTR_RDONLY | LAUNCH_MOUNT_ATTR_NOSUID | LAUNCH_MOUNT_ATTR_NODEV, 0, 0, (unsigned long long)userns};
		if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) die("mount_setattr MOUNT_ATTR_IDMAP on", dir);
		if (syscall(SYS_move_mount, fd, "", AT_FDCWD, at, LAUNCH_MOVE_MOUNT_F_EMPTY_PATH) != 0) die("move_mount to", at);
		close(fd);
		cap += strlen(at) + 1;
		char *grown = realloc(out, cap);
		if (!grown) die("malloc", NULL);
		out = grown;
		len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? ":" : "", at);
	}
	free(list);
	if (!out) {
		errno = EINVAL;
		die("--idmapped-overlay: no lower layer", lowers);
	}
	return out;
}

/* Field 22 of /proc/PID/stat (after the last ')'), 0 if unreadable. */
static unsigned long long start_time(const char *pid) {
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0) return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p) return 0;
	p += 2; /* state is field 3 */
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p) p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

static int set_hostname(const char *pid, const char *expected_start) {
	char path[64], name[80];
	snprintf(path, sizeof path, "/proc/%s/ns/uts", pid);
	int ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0) die("open", path);
	/* The namespace held is that of the process meant, not of one that got
	 * its pid since (checked after the open), and never this process's own
	 * (the host's). */
	struct stat target, self;
	if (start_time(pid) != strtoull(expected_start, NULL, 10)) {
		errno = ESRCH;
		die("process", pid);
	}
	if (fstat(ns, &target) != 0 || stat("/proc/self/ns/uts", &self) != 0) die("stat", path);
	if (target.st_ino == self.st_ino && target.st_dev == self.st_dev) {
		errno = EPERM;
		die("not a container's UTS namespace:", path);
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(0, name + n, 1);
		if (r == 0) return 0; /* nobody wants a new name */
		if (r < 0) {
			if (errno == EINTR) continue;
			die("read", "stdin");
		}
		if (name[n] == '\n') break;
		if (++n >= 64) {
			errno = ENAMETOOLONG;
			die("hostname", NULL);
		}
	}
	for (size_t k = 0; k < n; k++) {
		char c = name[k];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
			errno = EINVAL;
			die("hostname", NULL);
		}
	}
	if (n == 0) {
		errno = EINVAL;
		die("hostname", NULL);
	}
	if (setns(ns, CLONE_NEWUTS) != 0) die("setns", path);
	if (sethostname(name, n) != 0) die("sethostname", NULL);
	if (write(1, "ok\n", 3) != 3) die("write", "stdout");
	return 0;
}


/* basename of a path without trailing slash (points into p) */
static const char *base_of(const char *p) {
	const char *b = strrchr(p, '/');
	return b ? b + 1 : p;
}

/*
 * Mounts an overlay on TARGET whose options name neutral paths (/l0, /l1,
 * ..., /u/upper, /u/work), not the state dir's: overlayfs shows its option
 * strings in /proc/self/mountinfo, which the sandbox reads, and they named
 * every layer's and the sandbox's own host path (issue 18). The layers and
 * the upper's directory are bound into a staging tmpfs beside TARGET, a
 * child chroots there and mounts the overlay with the short names, the
 * mount is moved onto TARGET and the staging is detached. UPPER and WORK
 * must share a parent (they do: <dir>/upper and <dir>/work).
 */
static void mount_overlay(const char *lowers, const char *upper, const char *work, const char *target) {
	char stage[4096], path[4200];
	const char *slash = strrchr(target, '/');
	if (!slash || snprintf(stage, sizeof stage, "%.*s/.stage-%d", (int)(slash - target), target, (int)getpid()) >= (int)sizeof stage)
		die("target path", target);
	if (mkdir(stage, 0700) != 0 && errno != EEXIST) die("mkdir", stage);
	if (mount("corral-stage", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") != 0) die("mount tmpfs on", stage);
	size_t cap = strlen(lowers) + 256;
	char *lopts = malloc(cap), *list = strdup(lowers);
	if (!lopts || !list) die("malloc", NULL);
	lopts[0] = 0;
	int n = 0;
	for (char *save = NULL, *l = strtok_r(list, ":", &save); l; l = strtok_r(NULL, ":", &save), n++) {
		snprintf(path, sizeof path, "%s/l%d", stage, n);
		if (mkdir(path, 0700) != 0) die("mkdir", path);
		if (mount(l, path, NULL, MS_BIND, NULL) != 0) die("bind", l);
		size_t len = strlen(lopts);
		snprintf(lopts + len, cap - len, "%s/l%d", n ? ":" : "", n);
	}
	free(list);
	char opts[4096 + 512];
	if (upper) {
		size_t pl = (size_t)(strrchr(upper, '/') ? strrchr(upper, '/') - upper : 0);
		if (!strrchr(upper, '/') || !strrchr(work, '/') || (size_t)(strrchr(work, '/') - work) != pl || strncmp(upper, work, pl) != 0)
			die("upper and work need one parent:", work);
		char parent[4096];
		snprintf(parent, sizeof parent, "%.*s", (int)pl, upper);
		snprintf(path, sizeof path, "%s/u", stage);
		if (mkdir(path, 0700) != 0) die("mkdir", path);
		if (mount(parent, path, NULL, MS_BIND, NULL) != 0) die("bind", parent);
		snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=/u/%s,workdir=/u/%s", lopts, base_of(upper), base_of(work));
	} else {
		snprintf(opts, sizeof opts, "lowerdir=%s", lopts);
	}
	free(lopts);
	snprintf(path, sizeof path, "%s/m", stage);
	if (mkdir(path, 0700) != 0) die("mkdir", path);
	pid_t pid = fork();
	if (pid < 0) die("fork", NULL);
	if (pid == 0) {
		if (chroot(stage) != 0 || chdir("/") != 0) die("chroot", stage);
		unsigned long fl = MS_NOSUID | MS_NODEV | (upper ? 0 : MS_RDONLY);
		if (mount("overlay", "/m", "overlay", fl, opts) != 0) die("mount overlay on", target);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) exit(125);
	if (mount(path, target, NULL, MS_MOVE, NULL) != 0) die("move overlay to", target);
	if (umount2(stage, MNT_DETACH) != 0) die("umount", stage);
	rmdir(stage);
}


/*
 * --copy-tmpfs SRC DEST: a small read-only tmpfs on DEST holding copies of
 * SRC's regular files (the agent binary), so the bind config.json makes of
 * DEST shows "/" of a tmpfs in the sandbox's mountinfo, not the store's
 * host path (a bind shows its source's path within its filesystem;
 * issue 18). ~90 KB of memory per sandbox.
 */
static void copy_tmpfs(const char *src, const char *dest) {
	if (mkdir(dest, 0755) != 0 && errno != EEXIST) die("mkdir", dest);
	if (mount("corral-agent", dest, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755") != 0) die("mount tmpfs on", dest);
	int sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || dfd < 0) die("open", src);
	DIR *d = fdopendir(sfd);
	if (!d) die("opendir", src);
	for (struct dirent *e; (e = readdir(d));) {
		struct stat st;
		if (e->d_name[0] == '.' || fstatat(sfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
		int in = openat(sfd, e->d_name, O_RDONLY | O_CLOEXEC), out = openat(dfd, e->d_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0755);
		if (in < 0 || out < 0) die("copy", e->d_name);
		char buf[65536];
		for (ssize_t r; (r = read(in, buf, sizeof buf)) != 0;) {
			if (r < 0 || write(out, buf, (size_t)r) != r) die("copy", e->d_name);
		}
		close(in);
		close(out);
	}
	closedir(d);
	close(dfd);
	if (mount(NULL, dest, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0) die("remount ro", dest);
}

/* The drainer: fd 0 the pipe, fd 3 the log's directory; keeps the last
 * max..2*max bytes in NAME and NAME.1 (fixed names: "container.log"). */
static int drain(unsigned long long max) {
	const char *name = "container.log", *old = "container.log.1";
	int out = openat(3, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) return 1;
	struct stat st;
	unsigned long long size = fstat(out, &st) == 0 ? (unsigned long long)st.st_size : 0;
	char buf[16384];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return 0;
		if (size + (unsigned long long)n > max) {
			close(out);
			renameat(3, name, 3, old);
			out = openat(3, name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
			if (out < 0) return 1;
			size = 0;
		}
		/* a failed write (ENOSPC) loses those bytes, never blocks the sandbox */
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR) continue;
			if (w <= 0) break;
			off += w;
		}
		size += (unsigned long long)n;
	}
}

/* --log DIR NAME MAX: stdout and stderr become a pipe drained by a child
 * that re-execs as --drain (see the opening comment). */
static void start_log(const char *self, const char *dir, const char *name, const char *max) {
	if (strcmp(name, "container.log") != 0) {
		errno = EINVAL;
		die("--log name (container.log)", name);
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) die("pipe", "log");
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) die("open log dir", dir);
	pid_t child = fork();
	if (child < 0) die("fork", "log drainer");
	if (child == 0) {
		/* its own session, and a grandchild: nobody waits for it, and it
		 * outlives the launcher as the sandbox does */
		if (setsid() < 0 || fork() != 0) _exit(0);
		if (dup2(p[0], 0) < 0 || dup2(dfd, 3) < 0) _exit(1);
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		char *argv[] = {(char *)"corral-launch", (char *)"--drain", (char *)max, NULL};
		execv(self, argv);
		_exit(1);
	}
	int st;
	waitpid(child, &st, 0);
	if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0) die("dup2", "log pipe");
	close(p[0]);
	close(p[1]);
	close(dfd);
}

/* <linux/loop.h>, which musl lacks: what --ext4 uses (LOOP_CONFIGURE: 5.8). */
#define LAUNCH_LOOP_CTL_GET_FREE 0x4C82
#define LAUNCH_LOOP_CONFIGURE 0x4C0A
#define LAUNCH_LO_FLAGS_AUTOCLEAR 4
struct launch_loop_info64 {
	unsigned long long lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit;
	unsigned int lo_number, lo_encrypt_type, lo_encrypt_key_size, lo_flags;
	unsigned char lo_file_name[64], lo_crypt_name[64], lo_encrypt_key[32];
	unsigned long long lo_init[2];
};
struct launch_loop_config {
	unsigned int fd, block_size;
	struct launch_loop_info64 info;
	unsigned long long reserved[8];
};

static void mount_ext4(const char *image, const char *dir) {
	int img = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (img < 0) die("open disk image", image);
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) die("open", "/dev/loop-control");
	for (int tries = 0;; tries++) {
		int n = ioctl(ctl, LAUNCH_LOOP_CTL_GET_FREE);
		if (n < 0) die("loop-control", "get free");
		char dev[32];
		snprintf(dev, sizeof dev, "/dev/loop%d", n);
		int lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) die("open", dev);
		struct launch_loop_config cfg;
		memset(&cfg, 0, sizeof cfg);
		cfg.fd = (unsigned int)img;
		cfg.info.lo_flags = LAUNCH_LO_FLAGS_AUTOCLEAR;
		if (ioctl(lfd, LAUNCH_LOOP_CONFIGURE, &cfg) != 0) {
			/* another process took that device since GET_FREE */
			if (errno == EBUSY && tries < 50) {
				close(lfd);
				continue;
			}
			die("configure", dev);
		}
		if (mount(dev, dir, "ext4", MS_NOSUID | MS_NODEV, NULL) != 0) die("mount ext4 on", dir);
		close(lfd); /* the mount holds the device; autoclear detaches it with the mount */
		break;
	}
	close(ctl);
	close(img);
}

static void usage(void) {
	fprintf(stderr, "usage: corral-launch [--unmount P]... [--tmpfs DIR BYTES] [--owned-dir DIR UID]... "
	                "[--overlay LOWERS UPPER WORK TARGET] [--ro-overlay LOWERS TARGET] [--userns BASE COUNT] "
	                "[--idmap FROM TO COUNT MNTDIR] [--idmapped-overlay LOWERS UPPER WORK TARGET] "
	                "[--bind-beneath ROOT REL STAGE ro|rw]... [--copy-tmpfs SRC DEST] -- CMD ARGS...\n"
	                "       (first: [--log DIR container.log MAX_BYTES]; also [--ext4 IMAGE DIR])\n"
	                "       corral-launch --set-hostname PID STARTTIME\n");
	exit(125);
}

int main(int argc, char **argv) {
	int i = 1;
	unsigned long userns_base = 0, userns_count = 0;
	int idmap_ns = -1, idmap_next = 0;
	const char *idmap_dir = NULL;
	if (argc == 4 && strcmp(argv[1], "--set-hostname") == 0) return set_hostname(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "--drain") == 0) return drain(strtoull(argv[2], NULL, 10));
	if (argc > 5 && strcmp(argv[1], "--log") == 0) {
		start_log("/proc/self/exe", argv[2], argv[3], argv[4]);
		i = 5;
	}
	if (unshare(CLONE_NEWNS) != 0) die("unshare", "CLONE_NEWNS");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("make private", "/");
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) { i++; break; }
		if (strcmp(a, "--unmount") == 0 && i + 1 < argc) {
			if (umount2(argv[++i], MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) die("umount", argv[i]);
		} else if (strcmp(a, "--tmpfs") == 0 && i + 2 < argc) {
			char opts[64];
			const char *dir = argv[++i];
			unsigned long long size = strtoull(argv[++i], NULL, 10);
			snprintf(opts, sizeof opts, "size=%llu,mode=0755", size);
			if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) die("mount tmpfs on", dir);
		} else if (strcmp(a, "--ext4") == 0 && i + 2 < argc) {
			mount_ext4(argv[i + 1], argv[i + 2]);
			i += 2;
		} else if (strcmp(a, "--owned-dir") == 0 && i + 2 < argc) {
			const char *dir = argv[++i];
			unsigned long id = strtoul(argv[++i], NULL, 10);
			if (mkdir(dir, 0755) != 0 && errno != EEXIST) die("mkdir", dir);
			if (chown(dir, (uid_t)id, (gid_t)id) != 0) die("chown", dir);
		} else if (strcmp(a, "--overlay") == 0 && i + 4 < argc) {
			mount_overlay(argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4]);
			i += 4;
		} else if (strcmp(a, "--idmap") == 0 && i + 4 < argc && idmap_ns < 0) {
			unsigned long from = strtoul(argv[i + 1], NULL, 10), to = strtoul(argv[i + 2], NULL, 10), count = strtoul(argv[i + 3], NULL, 10);
			idmap_dir = argv[i + 4];
			i += 4;
			idmap_ns = idmap_userns(from, to, count);
			if (mkdir(idmap_dir, 0700) != 0 && errno != EEXIST) die("mkdir", idmap_dir);
			if (mount("tmpfs", idmap_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0700") != 0) die("mount tmpfs on", idmap_dir);
		} else if (strcmp(a, "--idmapped-overlay") == 0 && i + 4 < argc) {
			if (idmap_ns < 0) usage();
			char *lowers = idmap_lowers(argv[i + 1], idmap_ns, idmap_dir, &idmap_next);
			mount_overlay(lowers, argv[i + 2], argv[i + 3], argv[i + 4]);
			free(lowers);
			i += 4;
		} else if (strcmp(a, "--ro-overlay") == 0 && i + 2 < argc) {
			const char *lowers = argv[i + 1], *target = argv[i + 2];
			i += 2;
			mount_overlay(lowers, NULL, NULL, target);
		} else if (strcmp(a, "--copy-tmpfs") == 0 && i + 2 < argc) {
			copy_tmpfs(argv[i + 1], argv[i + 2]);
			i += 2;
		} else if (strcmp(a, "--bind-beneath") == 0 && i + 4 < argc) {
			bind_beneath(argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4], idmap_ns);
			i += 4;
		} else if (strcmp(a, "--userns") == 0 && i + 2 < argc) {
			unsigned long base = strtoul(argv[i + 1], NULL, 10), count = strtoul(argv[i + 2], NULL, 10);
			i += 2;
			userns_base = base;
			userns_count = count;
		} else {
			usage();
		}
	}
	if (i >= argc) usage();
	if (userns_count) enter_userns(userns_base, userns_count);
	execvp(argv[i], argv + i);
	die("exec", argv[i]);
	return 125;
}
