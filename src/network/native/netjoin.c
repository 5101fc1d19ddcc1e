/*
 * corral-netjoin: puts a container on its network in one short process:
 *
 *   corral-netjoin PID STARTTIME PORT BRIDGE MAC ADDR/PREFIX GATEWAY
 *   corral-netjoin --serve      (the same, one request a line: see serve)
 *
 * The container's init PID (refused unless /proc/PID/stat's start time is
 * STARTTIME: a recycled pid is never taken for it) has a network namespace
 * crun made in the container's user namespace. One RTM_NEWLINK makes a
 * veth pair there and then: PORT on the host, on BRIDGE and up, its peer
 * eth0 (with MAC) created inside the container's namespace
 * (VETH_INFO_PEER with IFLA_NET_NS_FD). Made in place, not moved: moving a
 * link between namespaces waits for RCU grace periods, 16-17 ms a move on
 * this host against ~3 ms for the whole `ip link add ... netns`. Then,
 * inside (setns), the loopback and eth0 go up, eth0 gets ADDR/PREFIX and a
 * default route via GATEWAY. Exit 0, or 1 with one line on stderr.
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
#include <sys/wait.h>
#include <unistd.h>

/* musl ships no linux headers: the rtnetlink we use, as the kernel uapi has it. */
#define NETLINK_ROUTE 0
#define RTM_NEWLINK 16
#define NLM_F_REQUEST 1
#define NLM_F_ACK 4
#define NLMSG_ERROR 2
#define NLM_F_EXCL 0x200
#define NLM_F_CREATE 0x400
#define NLA_F_NESTED 0x8000
#define IFLA_ADDRESS 1
#define IFLA_IFNAME 3
#define IFLA_MASTER 10
#define IFLA_LINKINFO 18
#define IFLA_NET_NS_FD 28
#define IFLA_INFO_KIND 1
#define IFLA_INFO_DATA 2
#define VETH_INFO_PEER 1
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

/* A netlink message being built: attributes appended, nests opened and closed. */
struct msg {
	char buf[1024];
	size_t len;
};

static void *put(struct msg *m, const void *data, size_t len)
{
	size_t at = NLMSG_ALIGN(m->len);
	if (at + NLMSG_ALIGN(len) > sizeof m->buf)
		die("netlink message too long");
	memset(m->buf + m->len, 0, at - m->len);
	if (data)
		memcpy(m->buf + at, data, len);
	else
		memset(m->buf + at, 0, len);
	m->len = at + len;
	return m->buf + at;
}

static size_t attr(struct msg *m, unsigned short type, const void *data, size_t len)
{
	size_t at = NLMSG_ALIGN(m->len);
	struct rtattr a = {.rta_len = (unsigned short)RTA_LENGTH(len), .rta_type = type};
	put(m, &a, sizeof a);
	if (len)
		put(m, data, len);
	return at;
}

static size_t nest(struct msg *m, unsigned short type) { return attr(m, type | NLA_F_NESTED, NULL, 0); }

static void end_nest(struct msg *m, size_t at) { ((struct rtattr *)(m->buf + at))->rta_len = (unsigned short)(m->len - at); }

static void parse_mac(const char *text, unsigned char mac[6])
{
	unsigned v[6];
	if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		die("bad MAC %s", text);
	for (int i = 0; i < 6; i++)
		mac[i] = (unsigned char)v[i];
}

/* The veth pair: `port` on the host, on `master` and up; eth0 (with `mac`) made inside the namespace of nsfd. */
static void create_veth(const char *port, int master, const unsigned char mac[6], int nsfd)
{
	struct msg m = {.len = 0};
	struct nlmsghdr *h = put(&m, NULL, sizeof *h);
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
	put(&m, &ifi, sizeof ifi);
	attr(&m, IFLA_IFNAME, port, strlen(port) + 1);
	uint32_t mi = (uint32_t)master;
	attr(&m, IFLA_MASTER, &mi, sizeof mi);
	size_t info = nest(&m, IFLA_LINKINFO);
	attr(&m, IFLA_INFO_KIND, "veth", 5);
	size_t data = nest(&m, IFLA_INFO_DATA);
	size_t peer = nest(&m, VETH_INFO_PEER);
	struct ifinfomsg pifi = {.ifi_family = AF_UNSPEC};
	put(&m, &pifi, sizeof pifi);
	attr(&m, IFLA_IFNAME, "eth0", 5);
	attr(&m, IFLA_ADDRESS, mac, 6);
	attr(&m, IFLA_NET_NS_FD, &nsfd, sizeof nsfd);
	end_nest(&m, peer);
	end_nest(&m, data);
	end_nest(&m, info);
	h = (struct nlmsghdr *)m.buf;
	h->nlmsg_len = (uint32_t)m.len;
	h->nlmsg_type = RTM_NEWLINK;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	h->nlmsg_seq = 1;
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s < 0)
		die("netlink socket: %s", strerror(errno));
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	if (sendto(s, m.buf, m.len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
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
		die("cannot make the veth pair %s/eth0: %s", port, strerror(-err));
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

static int join(int argc, char **argv)
{
	if (argc != 8)
		die("usage: corral-netjoin PID STARTTIME PORT BRIDGE MAC ADDR/PREFIX GATEWAY");
	const char *pid = argv[1], *port = argv[3], *bridge = argv[4], *gw = argv[7];
	unsigned char mac[6];
	parse_mac(argv[5], mac);
	char addr[32];
	int prefix;
	if (sscanf(argv[6], "%31[0-9.]/%d", addr, &prefix) != 2 || prefix < 1 || prefix > 32)
		die("ADDR/PREFIX expected, got %s", argv[6]);
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
	int master = (int)if_nametoindex(bridge);
	if (!master)
		die("no bridge %s: %s", bridge, strerror(errno));
	create_veth(port, master, mac, nsfd);
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

/*
 * --serve: one request a line on stdin ("PID STARTTIME PORT BRIDGE MAC
 * ADDR/PREFIX GATEWAY"), one answer a line on stdout ("ok", or "error MESSAGE"), in
 * order. Each join runs in a child of its own (setns changes the caller's
 * namespace; the child's goes with it): a fork of this small static
 * process instead of a spawn from a large node process (~7 ms here). It
 * ends at EOF on stdin: when its starter goes.
 */
static int serve(void)
{
	char line[512];
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin)) {
		char *args[9] = {"corral-netjoin"};
		int n = 1;
		for (char *save = NULL, *w = strtok_r(line, " \n", &save); w && n < 9; w = strtok_r(NULL, " \n", &save))
			args[n++] = w;
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0) {
			printf("error pipe: %s\n", strerror(errno));
			continue;
		}
		pid_t child = fork();
		if (child == 0) {
			dup2(p[1], 2);
			exit(join(n, args));
		}
		close(p[1]);
		char msg[300];
		ssize_t got = 0, r;
		while (got < (ssize_t)sizeof msg - 1 && (r = read(p[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0)
			got += r;
		close(p[0]);
		msg[got > 0 ? got : 0] = 0;
		int status = 0;
		if (child < 0 || waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			char *nl = strchr(msg, '\n');
			if (nl)
				*nl = 0;
			printf("error %s\n", got > 0 ? msg : child < 0 ? "fork failed" : "the join ended abnormally");
		} else {
			printf("ok\n");
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--serve"))
		return serve();
	return join(argc, argv);
}
