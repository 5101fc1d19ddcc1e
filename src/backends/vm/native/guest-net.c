/*
 * corral-init: the guest's network from the kernel command line, with no
 * DHCP round trip (corral knows the address it gave the sandbox): the
 * loopback up, eth0's address and default route by ioctl, /etc/hosts and
 * /etc/resolv.conf in the new root. A few system calls; no busybox fork
 * (each costs ~8 ms under TCG).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "guest-net.h"

static int set_up(int s, const char *dev)
{
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return errno;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr) < 0 ? errno : 0;
}

int guest_lo_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return errno;
	int err = set_up(s, "lo");
	close(s);
	return err;
}

static void in4(struct sockaddr *sa, in_addr_t a)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	memset(in, 0, sizeof *in);
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = a;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return errno;
	size_t n = strlen(text);
	int err = write(fd, text, n) == (ssize_t)n ? 0 : (errno ? errno : EIO);
	close(fd);
	return err;
}

int guest_net_up(const char *spec, const char *hostname, const char *root, long wait_ms, char why[static 256])
{
	char buf[128], addr[32], gw[32], dns[32];
	int prefix;
	snprintf(buf, sizeof buf, "%s", spec);
	if (sscanf(buf, "%31[0-9.]/%d,%31[0-9.],%31[0-9.]", addr, &prefix, gw, dns) != 4 || prefix < 1 || prefix > 32) {
		snprintf(why, 256, "corral.net must be ADDR/PREFIX,GATEWAY,DNS, got %s", spec);
		return EINVAL;
	}
	in_addr_t a = inet_addr(addr), g = inet_addr(gw);
	in_addr_t m = htonl(prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix));
	/* virtio_net probes the device as it loads: eth0 may come a moment later. */
	struct stat st;
	char sys[300];
	snprintf(sys, sizeof sys, "%.200s/sys/class/net", root); /* sysfs is moved under the new root by now */
	char eth0[320];
	snprintf(eth0, sizeof eth0, "%s/eth0", sys);
	for (long waited = 0; stat(eth0, &st) < 0; waited++) {
		if (waited >= wait_ms) {
			char links[160] = "";
			DIR *d = opendir(sys);
			for (struct dirent *e; d && (e = readdir(d));)
				if (e->d_name[0] != '.' && strlen(links) + strlen(e->d_name) + 2 < sizeof links)
					strcat(strcat(links, " "), e->d_name);
			if (d)
				closedir(d);
			snprintf(why, 256, "no eth0 after %ld ms (links:%s)", wait_ms, links);
			return ENODEV;
		}
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(why, 256, "socket");
		return errno;
	}
	int err = 0;
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, IFNAMSIZ, "eth0");
	in4(&ifr.ifr_addr, a);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
		err = errno;
		snprintf(why, 256, "eth0 address %s", addr);
	}
	in4(&ifr.ifr_netmask, m);
	if (!err && ioctl(s, SIOCSIFNETMASK, &ifr) < 0) {
		err = errno;
		snprintf(why, 256, "eth0 netmask /%d", prefix);
	}
	if (!err && (err = set_up(s, "eth0")))
		snprintf(why, 256, "eth0 up");
	if (!err) {
		struct rtentry rt = {0};
		in4(&rt.rt_dst, INADDR_ANY);
		in4(&rt.rt_genmask, INADDR_ANY);
		in4(&rt.rt_gateway, g);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = "eth0";
		if (ioctl(s, SIOCADDRT, &rt) < 0) {
			err = errno;
			snprintf(why, 256, "default route via %s", gw);
		}
	}
	close(s);
	if (err)
		return err;
	char path[300], text[400];
	snprintf(path, sizeof path, "%s/etc", root);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/etc/resolv.conf", root);
	snprintf(text, sizeof text, "nameserver %s\n", dns);
	if ((err = write_text(path, text))) {
		snprintf(why, 256, "%.200s", path);
		return err;
	}
	snprintf(path, sizeof path, "%s/etc/hosts", root);
	snprintf(text, sizeof text, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", addr, hostname);
	if ((err = write_text(path, text)))
		snprintf(why, 256, "%.200s", path);
	return err;
}
