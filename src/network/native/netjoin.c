/*
 * corral-netjoin: puts a container on its network in one short process,
 * where `ip` took two (~15 ms each from a large node process here):
 *
 *   corral-netjoin PID STARTTIME PEER ADDR/PREFIX GATEWAY
 *
 * The container's init PID (refused unless /proc/PID/stat's start time is
 * STARTTIME: a recycled pid is never taken for it) has a network namespace
 * crun made in the container's user namespace. The host-side link PEER
 * (the sandbox's end of its veth pair) moves into it renamed eth0 in one
 * RTM_NEWLINK (IFLA_NET_NS_FD with IFLA_IFNAME); then, inside (setns),
 * the loopback and eth0 go up, eth0 gets ADDR/PREFIX and a default route
 * via GATEWAY. Exit 0, or 1 with one line on stderr.
 *
 * Build: node scripts/build-native.mjs (musl-gcc -static).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* musl ships no linux headers: the rtnetlink we use, as the kernel uapi has it. */
#define NETLINK_ROUTE 0
#define RTM_NEWLINK 16
#define NLM_F_REQUEST 1
#define NLM_F_ACK 4
#define NLMSG_ERROR 2
#define IFLA_IFNAME 3
#define IFLA_NET_NS_FD 28
struct nlmsghdr { uint32_t nlmsg_len; uint16_t nlmsg_type, nlmsg_flags; uint32_t nlmsg_seq, nlmsg_pid; };
struct nlmsgerr { int error; struct nlmsghdr msg; };
struct ifinfomsg { unsigned char ifi_family, ifi_pad; unsigned short ifi_type; int ifi_index; unsigned ifi_flags, ifi_change; };
struct rtattr { unsigned short rta_len, rta_type; };
struct sockaddr_nl { sa_family_t nl_family; unsigned short nl_pad; uint32_t nl_pid, nl_groups; };
#define NLMSG_ALIGN(len) (((len) + 3u) & ~3u)
#define NLMSG_HDRLEN ((unsigned)NLMSG_ALIGN(sizeof(struct nlmsghdr)))
#define NLMSG_LENGTH(len) ((len) + NLMSG_HDRLEN)
#define NLMSG_DATA(h) ((void *)((char *)(h) + NLMSG_HDRLEN))
#define NLMSG_OK(h, len) ((len) >= sizeof(struct nlmsghdr) && (h)->nlmsg_len >= sizeof(struct nlmsghdr) && (h)->nlmsg_len <= (len))
#define RTA_ALIGN(len) (((len) + 3u) & ~3u)
#define RTA_LENGTH(len) (RTA_ALIGN(sizeof(struct rtattr)) + (len))
#define RTA_SPACE(len) RTA_ALIGN(RTA_LENGTH(len))
#define RTA_DATA(a) ((void *)((char *)(a) + RTA_LENGTH(0)))

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("corral-netjoin: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* Field 22 of /proc/PID/stat, counted after the command's last ')'. */
static unsigned long long start_time(const char *pid)
{
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%s/stat", pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *s = strrchr(buf, ')');
	if (!s)
		return 0;
	s += 2;
	for (int field = 3; field < 22 && s; field++) {
		s = strchr(s, ' ');
		if (s)
			s++;
	}
	return s ? strtoull(s, NULL, 10) : 0;
}

static void add_attr(struct nlmsghdr *h, size_t cap, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
	size_t total = NLMSG_ALIGN(h->nlmsg_len) + RTA_SPACE(len);
	if (total > cap)
		die("netlink message too long");
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = (unsigned)total;
}

/* Moves link `ifindex` into the namespace of nsfd, named `name` there. */
static void move_link(int ifindex, int nsfd, const char *name)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
		char attrs[256];
	} req;
	memset(&req, 0, sizeof req);
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.i);
	req.h.nlmsg_type = RTM_NEWLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.h.nlmsg_seq = 1;
	req.i.ifi_family = AF_UNSPEC;
	req.i.ifi_index = ifindex;
	add_attr(&req.h, sizeof req, IFLA_NET_NS_FD, &nsfd, sizeof nsfd);
	add_attr(&req.h, sizeof req, IFLA_IFNAME, name, strlen(name) + 1);
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s < 0)
		die("netlink socket: %s", strerror(errno));
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	if (sendto(s, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
		die("netlink send: %s", strerror(errno));
	char buf[1024];
	ssize_t n = recv(s, buf, sizeof buf, 0);
	if (n < 0)
		die("netlink receive: %s", strerror(errno));
	struct nlmsghdr *r = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(r, (unsigned)n) || r->nlmsg_type != NLMSG_ERROR)
		die("netlink: unexpected answer");
	int err = ((struct nlmsgerr *)NLMSG_DATA(r))->error;
	if (err)
		die("cannot move the link into the container's namespace: %s", strerror(-err));
	close(s);
}

static void in4(struct sockaddr *sa, in_addr_t a)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	memset(in, 0, sizeof *in);
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = a;
}

static void up(int s, const char *dev)
{
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("%s flags: %s", dev, strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("%s up: %s", dev, strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc != 6)
		die("usage: corral-netjoin PID STARTTIME PEER ADDR/PREFIX GATEWAY");
	const char *pid = argv[1], *peer = argv[3], *gw = argv[5];
	char addr[32];
	int prefix;
	if (sscanf(argv[4], "%31[0-9.]/%d", addr, &prefix) != 2 || prefix < 1 || prefix > 32)
		die("ADDR/PREFIX expected, got %s", argv[4]);
	in_addr_t a = inet_addr(addr), g = inet_addr(gw);
	if (a == INADDR_NONE || g == INADDR_NONE)
		die("bad address %s or gateway %s", addr, gw);
	unsigned long long want = strtoull(argv[2], NULL, 10);
	if (!want || start_time(pid) != want)
		die("process %s is not the container's init (start time differs)", pid);
	char p[64];
	snprintf(p, sizeof p, "/proc/%s/ns/net", pid);
	int nsfd = open(p, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		die("%s: %s", p, strerror(errno));
	/* Checked again: the pid may have been recycled between the two reads. */
	if (start_time(pid) != want)
		die("process %s is not the container's init (start time differs)", pid);
	int ifindex = (int)if_nametoindex(peer);
	if (!ifindex)
		die("no link %s: %s", peer, strerror(errno));
	move_link(ifindex, nsfd, "eth0");
	if (setns(nsfd, CLONE_NEWNET) < 0)
		die("setns: %s", strerror(errno));
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("socket: %s", strerror(errno));
	up(s, "lo");
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, IFNAMSIZ, "eth0");
	in4(&ifr.ifr_addr, a);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
		die("eth0 address %s: %s", addr, strerror(errno));
	in4(&ifr.ifr_netmask, htonl(prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix)));
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		die("eth0 netmask /%d: %s", prefix, strerror(errno));
	up(s, "eth0");
	struct rtentry rt = {0};
	in4(&rt.rt_dst, INADDR_ANY);
	in4(&rt.rt_genmask, INADDR_ANY);
	in4(&rt.rt_gateway, g);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = "eth0";
	if (ioctl(s, SIOCADDRT, &rt) < 0)
		die("default route via %s: %s", gw, strerror(errno));
	return 0;
}
