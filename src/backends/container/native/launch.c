/*
 * corral-launch: prepares a container's root filesystem in a private mount
 * namespace and execs the OCI runtime there.
 *
 *   corral-launch [--unmount PATH]... [--tmpfs DIR SIZE_BYTES]
 *                 [--owned-dir DIR UID]... [--overlay LOWERS UPPER WORK TARGET]
 *                 -- RUNTIME ARGS...
 *
 * Every mount it makes lives only in the new namespace; the container's
 * mount namespace is a copy of it, so the mounts vanish with the container
 * and none can leak onto the host, whatever happens to corral.
 *
 * --unmount exists for hybrid cgroup hosts: crun refuses to run when
 * /sys/fs/cgroup/unified is mounted beside the v1 hierarchies, and within
 * this namespace it can simply be detached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, const char *arg) {
	fprintf(stderr, "corral-launch: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
	exit(125);
}

static void usage(void) {
	fprintf(stderr, "usage: corral-launch [--unmount P]... [--tmpfs DIR BYTES] [--owned-dir DIR UID]... "
	                "[--overlay LOWERS UPPER WORK TARGET] -- CMD ARGS...\n");
	exit(125);
}

int main(int argc, char **argv) {
	int i = 1;
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
		} else if (strcmp(a, "--owned-dir") == 0 && i + 2 < argc) {
			const char *dir = argv[++i];
			unsigned long id = strtoul(argv[++i], NULL, 10);
			if (mkdir(dir, 0755) != 0 && errno != EEXIST) die("mkdir", dir);
			if (chown(dir, (uid_t)id, (gid_t)id) != 0) die("chown", dir);
		} else if (strcmp(a, "--overlay") == 0 && i + 4 < argc) {
			const char *lowers = argv[++i], *upper = argv[++i], *work = argv[++i], *target = argv[++i];
			size_t n = strlen(lowers) + strlen(upper) + strlen(work) + 64;
			char *opts = malloc(n);
			if (!opts) die("malloc", NULL);
			snprintf(opts, n, "lowerdir=%s,upperdir=%s,workdir=%s", lowers, upper, work);
			if (mount("overlay", target, "overlay", MS_NOSUID | MS_NODEV, opts) != 0) die("mount overlay on", target);
			free(opts);
		} else {
			usage();
		}
	}
	if (i >= argc) usage();
	execvp(argv[i], argv + i);
	die("exec", argv[i]);
	return 125;
}
