/*
 * corral-init: PID 1 of a corral microVM's initramfs (docs/DESIGN.md, "How
 * a microVM sandbox is made").
 *
 * Build: musl-gcc -static -Os -Wall -Wextra -Werror -o corral-init init.c
 *        ../../../native/line.c (scripts/build-native.mjs does)
 *
 * It mounts /proc, /sys and /dev, loads the kernel modules listed in
 * /modules (finit_module, in that order; virtio-rng later, in the
 * background), mounts the template's erofs image (the virtio disk with
 * serial corral-root) read-only under an overlay whose upper layer is a
 * tmpfs of corral.size bytes or the VM's own ext4 disk (serial
 * corral-data), moves /proc, /sys and /dev into it, binds the agent and
 * busybox at /run/corral, makes the overlay the root (what busybox's
 * switch_root does; a child empties the initramfs meanwhile) and execs the
 * agent as PID 1 on the virtio-serial port named org.corral.agent (fd 3)
 * and/or vsock.
 *
 * It is C, not a busybox script, because under TCG every fork and exec of
 * busybox costs ~8 ms: the script forked ~25 times (insmod, mount, mkdir,
 * cp) before the agent ran.
 *
 * Kernel command line (see guestCmdline in qemu.ts):
 *   corral.probe=1         print PROBE_MARK and power off (accelerator
 *                          probe, the benchmark's boot floor)
 *   corral.hostname=NAME   the guest's hostname
 *   corral.upper=tmpfs|disk, corral.size=BYTES (tmpfs upper size)
 *   corral.vsock=PORT      load the vsock modules and have the agent listen
 *                          on vsock PORT (Cloud Hypervisor, Firecracker)
 *   corral.net=ADDR/PREFIX,GATEWAY,DNS  the network (guest-net.c): the
 *                          virtio-net modules, eth0's address and route,
 *                          /etc/hosts and /etc/resolv.conf; the loopback
 *                          is brought up in every guest
 *   corral.pids=N          the agent and all it starts live in the cgroup
 *                          /sys/fs/cgroup/sandbox with pids.max N (the
 *                          spec's resources.pids, as a container's cgroup)
 *   corral.nix=disk|share  disk: mount the Nix closure image (the erofs
 *                          disk with serial corral-nix) read-only at
 *                          /nix/store; share: the store is a share (below);
 *                          both put the template's profile first in the
 *                          agent's PATH (backends/vm/vm-nix.ts)
 *   corral.nixrw=1         the store (disk or share) is the read-only lower
 *                          layer of an overlay at /nix/store whose upper is
 *                          on the sandbox's writable disk or tmpfs
 *                          (nix: { writable: true }; nix-build inside)
 *   corral.share=TAG:ro|rw:/TARGET
 *                          mount virtiofs TAG at TARGET (read-only with ro),
 *                          nosuid, nodev; at most MAX_SHARES, in the order
 *                          given (parents first: backends/vm/vm-virtiofs.ts)
 *   MODULE.PARAM=VALUE     passed to that module as it is loaded (what
 *                          modprobe does), e.g. Firecracker's
 *                          virtio_mmio.device=
 *
 * Any failure prints "corral-init: ..." on the console and powers off; the
 * host reports the console's tail.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include "../../../native/line.h"
#include "guest-net.h"

#define PROBE_MARK "corral-probe-ok"
#define AGENT_PORT_NAME "org.corral.agent"
#define AGENT "/run/corral/agent"
#define NEWROOT "/newroot"
#define SANDBOX_CGROUP "/sys/fs/cgroup/sandbox"
/* A Nix template's profile first, then the agent's own default PATH
 * (store/nix/nix-layer.ts NIX_PROFILE_BIN, oci-config.ts DEFAULT_PATH). */
#define NIX_AGENT_PATH "/nix/var/nix/profiles/default/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Disks and ports appear as their drivers probe them: wait this long,
 * looking every POLL_MS (the agent's port comes a few ms after
 * virtio_console has loaded: its driver adds ports from the device's
 * control messages, in a work queue). */
#define DEVICE_WAIT_MS 3000
#define POLL_MS 1

static void say(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	int n = format_line(b, sizeof b, fmt, ap);
	va_end(ap);
	/* fd 1 is /dev/console when the kernel found one in the initramfs */
	if (n > 0 && write(1, b, (size_t)n) < 0) { /* nowhere to tell */ }
}

static void __attribute__((noreturn)) power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	char b[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	say("corral-init: %s", b);
	power_off();
}

static void do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data)
{
	if (mount(src, dst, type, flags, data) < 0)
		fail("cannot mount %s (%s) on %s: %s", src, type ? type : "move", dst, strerror(errno));
}

static void make_dir(const char *p, mode_t mode)
{
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		fail("cannot make %s: %s", p, strerror(errno));
}

/* Reads a small file into b (NUL-terminated, trailing newline dropped). */
static bool read_small(const char *p, char *b, size_t n)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t r;
	do
		r = read(fd, b, n - 1);
	while (r < 0 && errno == EINTR);
	close(fd);
	if (r < 0)
		return false;
	b[r] = 0;
	while (r > 0 && (b[r - 1] == '\n' || b[r - 1] == ' '))
		b[--r] = 0;
	return true;
}

static bool is_number(const char *s) { return *s && strspn(s, "0123456789") == strlen(s); }

static void sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&t, &t) < 0 && errno == EINTR) {}
}

/* Modules nothing at boot waits for, loaded by the background child (see
 * main): virtio-rng (the crng is seeded from RDRAND at boot:
 * random.trust_cpu=on, and TCG guests get an emulated RDRAND). */
static bool is_late(const char *m) { return !strcmp(m, "virtio-rng"); }

static bool is_vsock(const char *m) { return !strcmp(m, "vsock") || !strncmp(m, "vmw_vsock_", 10); }

/* Loaded only for a guest with a network (corral.net): ~10 ms of TCG boot the others do not pay. */
static bool is_net(const char *m) { return !strcmp(m, "failover") || !strcmp(m, "net_failover") || !strcmp(m, "virtio_net"); }

/* `module.param=value` words of the kernel command line. The kernel gives
 * them only to built-in code; for a module, modprobe reads them from
 * /proc/cmdline, and finit_module takes them as its argument. Firecracker
 * announces its virtio-mmio devices this way (virtio_mmio.device=...),
 * and virtio_mmio is a module in Debian's kernel. */
#define MAX_MODPARAMS 16
#define MAX_SHARES 16
static char *shares[MAX_SHARES];
static int n_shares;
static const char *modparams[MAX_MODPARAMS];
static int n_modparams;

/* Whether word `w` is a parameter of module `m` ('-' and '_' are one in module names). */
static bool param_of(const char *w, const char *m)
{
	for (; *m; m++, w++)
		if (*w != *m && !((*w == '-' || *w == '_') && (*m == '-' || *m == '_')))
			return false;
	return *w == '.';
}

/* The parameters for module m, "p1=v1 p2=v2", from modparams. */
static const char *params_for(const char *m, char out[static 1024])
{
	size_t n = 0;
	out[0] = 0;
	for (int i = 0; i < n_modparams; i++) {
		if (!param_of(modparams[i], m))
			continue;
		int w = snprintf(out + n, 1024 - n, "%s%s", n ? " " : "", modparams[i] + strlen(m) + 1);
		if (w < 0 || (size_t)w >= 1024 - n)
			fail("parameters of module %s are too long", m);
		n += (size_t)w;
	}
	return out;
}

/* Loads the modules listed in /modules (one name a line, in dependency
 * order): the late ones only, or all but those. */
static void load_modules(bool vsock, bool net, bool late)
{
	static char list[4096];
	if (!read_small("/modules", list, sizeof list))
		fail("cannot read /modules: %s", strerror(errno));
	for (char *save = NULL, *m = strtok_r(list, "\n", &save); m; m = strtok_r(NULL, "\n", &save)) {
		if ((!vsock && is_vsock(m)) || (!net && is_net(m)) || is_late(m) != late)
			continue;
		char p[256];
		snprintf(p, sizeof p, "/lib/modules/%s.ko", m);
		char params[1024];
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || (syscall(SYS_finit_module, fd, params_for(m, params), 0) < 0 && errno != EEXIST)) {
			/* The late ones are not worth the VM: said, not fatal. */
			if (late)
				say("corral-init: insmod %s: %s", m, strerror(errno));
			else
				fail("insmod %s: %s", m, strerror(errno));
		}
		if (fd >= 0)
			close(fd);
	}
}

/* Whether dir/name/attr holds want. */
static bool attr_is(const char *dir, const char *name, const char *attr, const char *want)
{
	char p[600], value[128];
	snprintf(p, sizeof p, "%s/%s/%s", dir, name, attr);
	return read_small(p, value, sizeof value) && !strcmp(value, want);
}

/* The entry of `dir` (one whose name starts with `prefix`) whose file
 * `attr` holds `want`, waiting up to wait_ms for it to appear (drivers
 * probe devices as they load). Its name goes to out. */
static bool find_entry(const char *dir, const char *prefix, const char *attr, const char *want, long wait_ms, char out[static 256])
{
	for (long waited = 0; waited <= wait_ms; waited += POLL_MS) {
		DIR *d = opendir(dir);
		if (d) {
			for (struct dirent *e; (e = readdir(d));) {
				if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)))
					continue;
				if (attr_is(dir, e->d_name, attr, want)) {
					snprintf(out, 256, "%s", e->d_name);
					closedir(d);
					return true;
				}
			}
			closedir(d);
		}
		if (waited < wait_ms)
			sleep_ms(POLL_MS);
	}
	return false;
}

/*
 * The first of `count` names (fmt with first..first+count-1) whose file attr under
 * dir holds want, looked up by name: cheaper than find_entry's readdir,
 * which is the only sysfs directory listing a boot would do (its first
 * run costs ~10 ms of translation under TCG), so find_entry is the
 * fallback for names outside the usual ones and for devices still coming.
 */
static bool probe_names(const char *dir, const char *fmt, int first, int count, const char *attr, const char *want, char out[static 256])
{
	for (int i = first; i < first + count; i++) {
		char name[64];
		snprintf(name, sizeof name, fmt, i);
		if (attr_is(dir, name, attr, want)) {
			snprintf(out, 256, "%s", name);
			return true;
		}
	}
	return false;
}

/* The /dev path of the virtio disk whose serial is corral-<id>: vda, vdb
 * (the order drivers probe them in, not the command line's). */
static bool find_disk(const char *id, char out[static 300])
{
	char want[64], name[256];
	snprintf(want, sizeof want, "corral-%s", id);
	if (!probe_names("/sys/block", "vd%c", 'a', 4, "serial", want, name) && !find_entry("/sys/block", "vd", "serial", want, DEVICE_WAIT_MS, name))
		return false;
	snprintf(out, 300, "/dev/%s", name);
	return true;
}

/* The name (vportNp1: port 1 of the Nth virtio-serial device) of the port
 * called AGENT_PORT_NAME. */
static bool find_port(char out[static 256], long wait_ms)
{
	return probe_names("/sys/class/virtio-ports", "vport%dp1", 0, 4, "name", AGENT_PORT_NAME, out) ||
	       find_entry("/sys/class/virtio-ports", "", "name", AGENT_PORT_NAME, wait_ms, out);
}

/* Makes the initramfs's file `from` appear at `to` (a bind mount: no copy;
 * it outlives the initramfs being emptied). */
static void bind_file(const char *from, const char *to)
{
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (fd < 0 || close(fd) < 0)
		fail("cannot make %s: %s", to, strerror(errno));
	do_mount(from, to, NULL, MS_BIND, NULL);
}

static void write_file(const char *p, const char *value)
{
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(value);
	if (fd < 0 || write(fd, value, n) != (ssize_t)n)
		fail("cannot write %s to %s: %s", value, p, strerror(errno));
	close(fd);
}

/*
 * The directory `rel` (relative, '/'-separated) below the new root, made
 * where missing, as an O_PATH fd. Each component is opened O_NOFOLLOW: a
 * persistent VM's own disk may hold a symlink where a mount point should
 * be (say /nix -> /), and following it here, before the switch of root,
 * would mount over the initramfs's own directories instead. Such a path
 * is refused.
 */
static int open_below_root(const char *rel)
{
	char part[256];
	int fd = open(NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail("cannot open " NEWROOT ": %s", strerror(errno));
	for (const char *p = rel; *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (!n)
			break;
		if (n >= sizeof part || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			fail("bad mount point /%s", rel);
		memcpy(part, p, n);
		part[n] = 0;
		p += n;
		if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST)
			fail("cannot make /%s: %s", rel, strerror(errno));
		int next = openat(fd, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			fail("mount point /%s: %s is not a directory (%s)", rel, part, strerror(errno));
		close(fd);
		fd = next;
	}
	return fd;
}

/* Mounts src (type, flags, data) on the directory `rel` below the new root. */
static void mount_below_root(const char *src, const char *rel, const char *type, unsigned long flags, const char *data)
{
	int fd = open_below_root(rel);
	char at[64];
	snprintf(at, sizeof at, "/proc/self/fd/%d", fd);
	if (mount(src, at, type, flags, data) < 0)
		fail("cannot mount %s (%s) on /%s: %s", src, type, rel, strerror(errno));
	close(fd);
}

/* Where the store is mounted when it is an overlay's lower layer (corral.nixrw=1). */
#define NIX_LOWER "/nixlower"

/* Mounts one corral.share= word, TAG:ro|rw:/TARGET (virtiofs); the
 * store's, when it is to be written over, at NIX_LOWER instead. */
static void mount_share(char *word, bool nix_lower)
{
	char *mode = strchr(word, ':');
	char *target = mode ? strchr(mode + 1, ':') : NULL;
	if (!mode || !target || target[1] != '/')
		fail("bad corral.share=%s (TAG:ro|rw:/TARGET)", word);
	*mode++ = 0;
	*target++ = 0;
	bool ro = !strcmp(mode, "ro");
	if (!ro && strcmp(mode, "rw"))
		fail("bad corral.share mode %s (ro or rw)", mode);
	unsigned long flags = MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0);
	if (nix_lower && !strcmp(target, "/nix/store"))
		do_mount(word, NIX_LOWER, "virtiofs", flags | MS_RDONLY, NULL);
	else
		mount_below_root(word, target + 1, "virtiofs", flags, NULL);
}

/* This process (the agent once it execs, and so all it starts) into the
 * cgroup v2 SANDBOX_CGROUP with pids.max `max`. Its kernel threads stay
 * in the root. */
static void limit_pids(const char *max)
{
	make_dir(NEWROOT "/sys/fs/cgroup", 0755);
	do_mount("cgroup2", NEWROOT "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	write_file(NEWROOT "/sys/fs/cgroup/cgroup.subtree_control", "+pids");
	make_dir(NEWROOT SANDBOX_CGROUP, 0755);
	write_file(NEWROOT SANDBOX_CGROUP "/pids.max", max);
	write_file(NEWROOT SANDBOX_CGROUP "/cgroup.procs", "0");
}

/* Removes what is under dirfd on device dev (the initramfs), not crossing
 * into other file systems (the new root and what was moved into it). */
static void empty_dir(int dirfd, dev_t dev)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return;
	}
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				empty_dir(sub, dev);
			unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
		} else {
			unlinkat(dirfd, e->d_name, 0);
		}
	}
	closedir(d);
}

int main(void)
{
	/* Files made here (the copies, mount points) get exactly the modes asked for. */
	umask(0);
	do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount("sys", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount("dev", "/dev", "devtmpfs", MS_NOSUID, NULL);

	static char cmdline[4096];
	if (!read_small("/proc/cmdline", cmdline, sizeof cmdline))
		fail("cannot read /proc/cmdline: %s", strerror(errno));
	const char *host = "sandbox", *upper = "tmpfs", *size = "1073741824", *vsock = NULL, *pids = NULL, *nix = NULL, *net = NULL;
	bool nixrw = false;
	bool probe = false;
	for (char *save = NULL, *a = strtok_r(cmdline, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
		if (!strcmp(a, "corral.probe=1"))
			probe = true;
		else if (!strncmp(a, "corral.hostname=", 16))
			host = a + 16;
		else if (!strncmp(a, "corral.upper=", 13))
			upper = a + 13;
		else if (!strncmp(a, "corral.size=", 12))
			size = a + 12;
		else if (!strncmp(a, "corral.vsock=", 13))
			vsock = a + 13;
		else if (!strncmp(a, "corral.pids=", 12))
			pids = a + 12;
		else if (!strncmp(a, "corral.nix=", 11))
			nix = a + 11;
		else if (!strcmp(a, "corral.nixrw=1"))
			nixrw = true;
		else if (!strncmp(a, "corral.share=", 13)) {
			if (n_shares == MAX_SHARES)
				fail("more than %d corral.share= words", MAX_SHARES);
			shares[n_shares++] = a + 13;
		}
		else if (!strncmp(a, "corral.net=", 11))
			net = a + 11;
		else if (strchr(a, '.') && strchr(a, '=') > strchr(a, '.') && n_modparams < MAX_MODPARAMS)
			modparams[n_modparams++] = a;
	}
	if (probe) {
		say(PROBE_MARK);
		power_off();
	}
	if (vsock && !is_number(vsock))
		fail("corral.vsock must be a port number, got %s", vsock);
	if (pids && !is_number(pids))
		fail("corral.pids must be a number, got %s", pids);
	if (nix && strcmp(nix, "disk") && strcmp(nix, "share"))
		fail("corral.nix must be disk or share, got %s", nix);

	load_modules(vsock != NULL, net != NULL, false);
	int lo_err = guest_lo_up();
	if (lo_err)
		fail("cannot bring the loopback up: %s", strerror(lo_err));
	if (sethostname(host, strlen(host)) < 0)
		fail("cannot set the hostname %s: %s", host, strerror(errno));

	char disk[300];
	make_dir("/lower", 0755);
	make_dir("/rw", 0755);
	make_dir(NEWROOT, 0755);
	if (!find_disk("root", disk))
		fail("no template image disk (serial corral-root)");
	do_mount(disk, "/lower", "erofs", MS_RDONLY, NULL);
	if (!strcmp(upper, "disk")) {
		if (!find_disk("data", disk))
			fail("no sandbox disk (serial corral-data)");
		do_mount(disk, "/rw", "ext4", MS_NOATIME, NULL);
	} else {
		char opts[96];
		snprintf(opts, sizeof opts, "size=%s,mode=0755", size);
		do_mount("upper", "/rw", "tmpfs", 0, opts);
	}
	/* The agent's channel: the named virtio-serial port, unless the VMM
	 * reaches it over vsock only (then there is none: no need to wait). */
	char port[256] = "";
	if (!find_port(port, vsock ? 0 : DEVICE_WAIT_MS) && !vsock)
		fail("no virtio-serial port " AGENT_PORT_NAME);

	make_dir("/rw/upper", 0755);
	make_dir("/rw/work", 0755);
	do_mount("overlay", NEWROOT, "overlay", 0, "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work");
	if (nixrw && !nix)
		fail("corral.nixrw=1 needs corral.nix=");
	if (nixrw)
		make_dir(NIX_LOWER, 0755);
	if (nix && !strcmp(nix, "disk")) {
		if (!find_disk("nix", disk))
			fail("no Nix store disk (serial corral-nix)");
		if (nixrw)
			do_mount(disk, NIX_LOWER, "erofs", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
		else
			mount_below_root(disk, "nix/store", "erofs", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
	}
	for (int i = 0; i < n_shares; i++)
		mount_share(shares[i], nixrw);
	if (nixrw) {
		/* The sandbox's own layer over the store, beside its root's upper
		 * (on its disk when persistent): the host's store is never written. */
		make_dir("/rw/nix-upper", 0755);
		make_dir("/rw/nix-work", 0755);
		mount_below_root("overlay", "nix/store", "overlay", MS_NOSUID | MS_NODEV, "lowerdir=" NIX_LOWER ",upperdir=/rw/nix-upper,workdir=/rw/nix-work");
	}
	static const char *const points[] = {NEWROOT "/proc", NEWROOT "/sys", NEWROOT "/dev", NEWROOT "/run", NEWROOT "/tmp"};
	for (size_t i = 0; i < sizeof points / sizeof *points; i++)
		make_dir(points[i], 0755);
	do_mount("/proc", NEWROOT "/proc", NULL, MS_MOVE, NULL);
	do_mount("/sys", NEWROOT "/sys", NULL, MS_MOVE, NULL);
	do_mount("/dev", NEWROOT "/dev", NULL, MS_MOVE, NULL);
	do_mount("run", NEWROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	make_dir(NEWROOT "/run/corral", 0755);
	make_dir(NEWROOT "/dev/pts", 0755);
	make_dir(NEWROOT "/dev/shm", 01777);
	do_mount("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	do_mount("shm", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	if (pids)
		limit_pids(pids);
	if (net) {
		char why[256] = "";
		int err = guest_net_up(net, host, NEWROOT, DEVICE_WAIT_MS, why);
		if (err)
			fail("network: %s: %s", why, strerror(err));
	}
	bind_file("/corral/agent", NEWROOT AGENT);
	bind_file("/bin/busybox", NEWROOT "/run/corral/busybox");

	if (port[0]) {
		char p[300];
		snprintf(p, sizeof p, NEWROOT "/dev/%s", port);
		int fd = open(p, O_RDWR); /* no O_CLOEXEC: the agent's fd 3 */
		if (fd < 0)
			fail("cannot open /dev/%s: %s", port, strerror(errno));
		if (fd != 3 && (dup2(fd, 3) < 0 || close(fd) < 0))
			fail("cannot make /dev/%s fd 3: %s", port, strerror(errno));
		say("corral-init: agent on /dev/%s", port);
	}
	if (vsock)
		say("corral-init: agent on vsock port %s", vsock);

	/* switch_root: the overlay becomes /. What is left to do off the
	 * agent's path (the late modules, freeing the initramfs: ~1 MiB of
	 * modules) a child does at the lowest priority; it keeps the old root
	 * through its fd, and the agent, PID 1 after the exec, reaps it. */
	struct stat st;
	if (stat("/", &st) < 0)
		fail("cannot stat /: %s", strerror(errno));
	if (chdir(NEWROOT) < 0)
		fail("cannot enter " NEWROOT ": %s", strerror(errno));
	int rootfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pid_t helper = fork();
	if (helper == 0) {
		if (setpriority(PRIO_PROCESS, 0, 19) < 0) { /* runs at the parent's */ }
		load_modules(false, false, true);
		if (rootfd >= 0)
			empty_dir(rootfd, st.st_dev);
		_exit(0);
	}
	if (helper < 0)
		fail("cannot fork: %s", strerror(errno));
	if (rootfd >= 0)
		close(rootfd);
	do_mount(".", "/", NULL, MS_MOVE, NULL);
	if (chroot(".") < 0 || chdir("/") < 0)
		fail("cannot change root: %s", strerror(errno));

	char *argv[12];
	int n = 0;
	argv[n++] = AGENT;
	if (port[0]) {
		argv[n++] = "--fd";
		argv[n++] = "3";
	}
	if (vsock) {
		argv[n++] = "--vsock";
		argv[n++] = (char *)vsock;
	}
	if (nix) {
		argv[n++] = "--path";
		argv[n++] = NIX_AGENT_PATH;
	}
	argv[n] = NULL;
	execv(AGENT, argv);
	fail("cannot run the agent: %s", strerror(errno));
}
