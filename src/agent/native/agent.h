/*
 * corral-agent: the in-sandbox agent of corral (docs/protocol.md, version 1).
 *
 * Build: node scripts/build-native.mjs, which runs musl-gcc -static -Os
 *        -flto -Wall -Wextra -Werror -o corral-agent on the .c files here
 *        (plain gcc works too).
 * Usage: corral-agent [--socket PATH] [--vsock PORT] [--fd N] [--ready-fd N]
 *                     [--root DIR] [--path DIRS]
 * Test:  python3 test_agent.py ./corral-agent; fuzz/fuzz_request.c is a
 *        libFuzzer target over request.c, run by src/agent/agent-fuzz.test.ts
 *
 * Source layout (this header declares what crosses files):
 *   util.c     logging, the clock, fd helpers, errno names, growable buffers
 *   json.c     the JSON parser of request headers and its typed getters
 *   reply.c    JSON output: replies framed into a connection's output
 *   request.c  what a frame and each request must be, checked and decoded;
 *              no I/O and no agent state, so fuzz/fuzz_request.c drives it
 *   spawn.c    a command's child: clone(CLONE_VM|CLONE_VFORK), execvp
 *   exec.c     execs: the exec, stdin and signal ops, pipes, start, exit
 *   files.c    stat, mkdir, remove: every path resolved by openat2
 *              RESOLVE_IN_ROOT inside --root
 *   resolve.c  the same rules walked in user space, fd by fd, where
 *              openat2 is missing (gVisor)
 *   streams.c  the write, read and list streams and their flow control
 *   pty.c      terminals: an exec's pseudo-terminal, and the resize op
 *   ring.c     the output ring of a background command, attach and procs
 *   watch.c    the watch op: inotify on a directory (tree), its events
 *   rename.c   the rename op
 *   flow.c     the flow op: one stream's output paused and resumed
 *   tcp.c      TCP streams to a port on the sandbox's loopback (connect)
 *   conn.c     connections: input framing, dispatch, output
 *   main.c     options, listeners and accept, the epoll loop, signals, timers
 *
 * One thread, one epoll loop. SIGCHLD/SIGTERM/SIGINT are blocked and read
 * from a signalfd; exec timeouts and other deadlines are the epoll_wait
 * timeout. Every fd the agent owns is O_CLOEXEC; SIGPIPE is ignored in the
 * agent and reset to the default in children.
 *
 * Readings of protocol.md where it is silent or ambiguous:
 * - Names or link targets that are not valid UTF-8 are sent with each
 *   invalid byte escaped as \u00XX (the byte's latin-1 code point), so such
 *   names do not round-trip. Lone UTF-16 surrogates in \u escapes of a
 *   request decode to U+FFFD. Raw bytes in request strings are taken as is.
 * - A frame that cannot be parsed (bad lengths, header not a JSON object)
 *   gets {"ev":"error","id":0,"code":"EPROTO"} and the connection is closed
 *   once that is flushed (at most 2 s later). A well-formed object without a
 *   valid id gets the same error but keeps the connection; a bad op, a
 *   missing or mistyped field gets EPROTO on the request's id.
 * - Opening a stream (exec/write/read/list) with an id that is still open on
 *   the connection is answered with EPROTO on that id.
 * - If an exec has both argv and cmd, argv wins. cwd must be absolute
 *   (EINVAL otherwise).
 * - EOF on a connection (including a half-close) counts as losing it.
 *   With --fd the stream is then closed and the agent keeps running.
 * - write: "size" in the ok reply is the number of bytes this stream
 *   wrote (not the file size, which differs with append).
 * - read: FIFOs and sockets are refused with EINVAL (they could block the
 *   agent); character devices are read non-blocking and EAGAIN ends the
 *   stream with an EAGAIN error.
 * - remove of a path whose last component is "." or ".." is EINVAL, or
 *   EBUSY when it names the root. Trailing slashes are ignored.
 * - list is flow controlled like read (entries go out while the unsent
 *   output is under 256 KiB).
 * - exec after SIGTERM/SIGINT started the shutdown is ESHUTDOWN.
 * - "started" goes out START_HOLD_MS after the fork, or with "exit" for a
 *   command that ends sooner (its output then comes between the two).
 * - timeoutMs may be any positive number (fractions round up); <= 0 or
 *   null means no timeout. hello's "pid" is getpid() (1 when PID 1).
 * - Without openat2 (gVisor 2022-12, kernels < 5.6) paths are resolved by
 *   resolve.c, fd by fd under the same rules (--resolver walk forces it).
 * - --vsock PORT listens on AF_VSOCK (any CID, PORT) as well as, or instead
 *   of, --socket; connections from either listener are served alike. A
 *   listener that cannot be set up is fatal (exit 1): it is the only way in.
 * - --root DIR (default "/") roots the file operations only; exec always
 *   runs with the agent's own root and cwd is a plain chdir().
 * - stdin data is queued per exec; when more than 1 MiB is queued the agent
 *   stops reading that connection until the child has taken it.
 * - exec stdout/stderr are no longer read while the connection has more
 *   than 1 MiB unsent, and again below 256 KiB. At exit the pipes are
 *   drained (at most 4 MiB) before "exit" is sent.
 * - exec "window" (1..1 MiB) turns on per-exec flow control, echoed in
 *   "started": at most window bytes of stdout+stderr go out to the starter
 *   unacknowledged (the host's {"op":"credit","id":E,"bytes":N}
 *   acknowledges), and the agent acknowledges stdin written to the child
 *   with {"ev":"credit",...} (batched: every CHUNK, or when the queue
 *   empties). A slow reader of one command then stops that command only,
 *   not the connection. The drain at exit ignores the window (bounded by
 *   DRAIN_MAX). Attach streams have no window: the flow op (or their
 *   connection's 1 MiB pause) holds them.
 * - An exec's output goes to its starter's connection (unless "detached")
 *   and to every attach stream on it; its pipes are paused while any of
 *   those connections has more than 1 MiB unsent. With none of them (a
 *   detached exec nobody attached to, or a keepAlive one whose connection
 *   went) the pipes are read on and the output kept only in the ring.
 * - A keepAlive exec keeps its last RING_CAP bytes of output (stdout and
 *   stderr in the order the agent read them; the oldest chunk kept is cut
 *   at its start) from its first output to its exit; attach replays them,
 *   then sends the output live.
 * - The pty of an exec is the master of a pseudo-terminal from
 *   /dev/pts/ptmx (or /dev/ptmx); the child is its session leader with the
 *   slave as controlling terminal on fds 0-2. Its output is "stdout".
 * - watch reads inotify events only while the connection has less than
 *   1 MiB unsent; the kernel queues max_queued_events (16384 by default)
 *   per watch meanwhile and then reports an overflow, sent as one.
 */
#ifndef CORRAL_AGENT_H
#define CORRAL_AGENT_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

/* musl ships no linux/openat2.h: define what we use. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif
#ifndef __WALL
#define __WALL 0x40000000
#endif
#ifndef PR_SET_CHILD_SUBREAPER
#define PR_SET_CHILD_SUBREAPER 36
#endif

/* <linux/vm_sockets.h> is not in musl's headers: the kernel's sockaddr_vm. */
#ifndef VMADDR_CID_ANY
#define VMADDR_CID_ANY 0xFFFFFFFFu
#endif
struct corral_sockaddr_vm {
	sa_family_t svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};

struct corral_open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};

#define AGENT_NAME "corral-agent/0.2" /* 0.2: pty, attach, procs, watch, rename, flow; connect, close */
#define MAX_HEADER 65536u
#define MAX_PAYLOAD (1024u * 1024u)
#define CHUNK (64u * 1024u)
#define OUT_HIGH (1024u * 1024u)   /* pause exec pipes above this */
#define OUT_LOW (256u * 1024u)     /* resume pipes / pump files below this */
#define STDIN_HIGH (1024u * 1024u) /* stop reading a connection above this */
#define WINDOW_MAX (1024u * 1024u) /* most an exec's "window" may be */
#define DRAIN_MAX (4u * 1024u * 1024u)
/* Output a keepAlive exec keeps for attach: the last 64 KiB. A dev
 * server's recent log lines or a shell's screen, at most 128 KiB of memory
 * per background command (the buffer is twice this, so the ring moves its
 * bytes once per 64 KiB written, not once per chunk). */
#define RING_CAP (64u * 1024u)
/* procs: argv, cwd and tag kept per exec, at most this much (an argv
 * longer than that is cut, with "truncated":true) */
#define INFO_MAX 4096u
#define TAG_MAX 256u
/* watch: at most this many directories watched per recursive watch */
#define WATCH_DIRS_MAX 8192u
#define MSG_PATH_MAX 1024 /* bytes of a path echoed in an error message */
#define SHUTDOWN_WAIT_MS 2000
#define CLOSE_LINGER_MS 2000
/* A command that ends this soon after its fork has its "started" sent with
 * its "exit", in one write: two fewer wakeups of the host's side for a
 * short command. The errpipe is looked at once, at this deadline or at the
 * exit, instead of waking the agent when execve succeeds; a command still
 * before its execve then (a slow fork) is watched through the errpipe. */
#define START_HOLD_MS 2
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ------------------------------------------------------------------ */
/* util.c: small utilities and the growable byte buffer                */

void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t now_ms(void);
void xclose(int *fd);
int set_nonblock(int fd);
int write_full(int fd, const char *p, size_t n);
const char *errname(int e);

static inline void put32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

static inline uint32_t get32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static inline bool has_nul(const char *s, size_t l) { return memchr(s, 0, l) != NULL; }

/* data is p[off..len) */
struct buf {
	char *p;
	size_t off, len, cap;
};

static inline size_t buf_used(const struct buf *b) { return b->len - b->off; }
int buf_reserve(struct buf *b, size_t extra);
int buf_put(struct buf *b, const void *s, size_t n);
void buf_free(struct buf *b);
void buf_settle(struct buf *b);

/* ------------------------------------------------------------------ */
/* json.c: JSON parsing (headers only: at most 64 KiB)                 */

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jnode {
	int type, next, child;
	const char *key, *s; /* decoded, NUL-terminated */
	size_t klen, slen;
	double d;
	int64_t i;
	bool isint;
};

struct jdoc {
	struct jnode *n;
	int cnt, cap, depth;
	char *sb; /* decoded strings; never needs more than the input length + 1 */
	size_t sbl;
	const char *p, *e;
};

int jparse(struct jdoc *d, const char *s, size_t n);
void jfree(struct jdoc *d);
int jget(const struct jdoc *d, int obj, const char *key);
/* get_*: 1 = present, 0 = absent or null, -1 = wrong type. */
int get_str(const struct jdoc *d, const char *key, const char **s, size_t *l);
int get_bool(const struct jdoc *d, const char *key, bool *out);
int get_int(const struct jdoc *d, const char *key, int64_t *out);

/* ------------------------------------------------------------------ */
/* request.c: frames and requests, checked without side effects        */

enum {
	OP_DATA = 1, OP_STDIN, OP_END, OP_HELLO, OP_EXEC, OP_SIGNAL,
	OP_WRITE, OP_READ, OP_STAT, OP_LIST, OP_MKDIR, OP_REMOVE, OP_CONNECT, OP_CLOSE, OP_CREDIT,
};
/* interactive ops (pty.c, ring.c, watch.c, rename.c) */
enum { OP_RESIZE = 32, OP_ATTACH, OP_PROCS, OP_WATCH, OP_RENAME, OP_FLOW };

/* A request's fields, decoded by req_check for its op. */
struct req {
	const char *path; /* write read stat list mkdir remove */
	int64_t mode, offset, length, target, signal;
	bool append, mkdirs, follow, parents, recursive, eof;
	/* exec: argv, the /bin/sh argv for a script without #!, "K=V" strings */
	char **argv, **shv, **envp, *envblk;
	const char *cwd, *envpath; /* envpath: the PATH searched */
	size_t cwdl;
	bool want_stdin, keepalive;
	int64_t timeout; /* ms, 0 = none */
	int64_t window;  /* exec: per-exec flow control, bytes (0 = off); credit: bytes */
	/* exec: a pty of rows x cols (pty), output only to attach streams
	 * (detached), a tag for procs; resize: rows, cols; attach, signal,
	 * stdin, resize: pid (0 = none given: the stream id is the target) */
	bool pty, detached;
	int64_t rows, cols, pid;
	const char *tag;
	size_t tagl;
	const char *to; /* rename: the new path */
	bool pause;     /* flow */
	bool noreplace; /* rename: EEXIST rather than replace */
	int64_t port;    /* connect: 1..65535 */
};

int frame_next(const char *p, size_t avail, uint32_t *hl, uint32_t *pl);
int request_parse(struct jdoc *d, const char *h, size_t hl, uint32_t *id, int *op, const char **msg);
int req_check(int op, const struct jdoc *d, const char *default_path, struct req *r, const char **msg);
void req_free(struct req *r);

/* ------------------------------------------------------------------ */
/* objects                                                             */

enum { W_LISTEN = 1, W_SIG, W_CONN, W_OUT, W_ERR, W_IN, W_ERRP, W_TCP };
enum { W_INOTIFY = 32 };

struct watch {
	int kind;
	void *obj;
};

enum { S_READ = 1, S_LIST, S_WRITE, S_TCP };

struct conn;

struct stream {
	struct stream *next;
	int kind;
	uint32_t id;
	int fd;
	DIR *dir;
	int64_t remaining; /* read: bytes still wanted, < 0 = to EOF */
	int64_t done;      /* bytes sent / written, or entries listed */
	bool paused;       /* flow: not pumped */
	/* write: the file this stream made or truncated, removed again if
	 * the write fails (ENOSPC: no partial file left); pfd < 0 when not */
	int pfd;
	char *base;
	dev_t dev;
	ino_t ino;
	/* S_TCP (tcp.c) */
	struct conn *conn;
	struct buf q;      /* bytes for the socket */
	struct watch w;
	uint32_t events;   /* registered epoll events */
	int64_t port;
	bool connected, tried_v6, rd_eof, wr_end, wr_shut, dead;
};

struct exec;
struct watcher;

/* A stream of another connection (or of the starter's, under another id)
 * that gets an exec's output and exit: the attach op. */
struct attach {
	struct attach *next;
	struct conn *conn;
	uint32_t id;
	bool paused; /* flow */
};

/* The last RING_CAP bytes of an exec's output (the oldest chunk cut at
 * its start), as records of a 4-byte header (bit 31: stderr, the rest:
 * length) and the bytes, in p[off..len) of a buffer of 2 * RING_CAP
 * allocated at the first output. */
struct ring {
	char *p;
	size_t off, len;
};

struct conn {
	struct conn *next;
	int fd;
	uint32_t events;     /* registered epoll events */
	bool dead;           /* fd closed, waiting to be freed */
	bool broken;         /* out of memory: destroy at the end of the tick */
	bool closing;        /* protocol error: flush, then close */
	bool in_paused;      /* an exec's stdin queue is full */
	bool needs_input;    /* buffered frames to parse after a pause */
	bool pipes_paused;   /* exec output not read: too much unsent */
	struct exec *in_blocker;
	struct stream *in_tcp_blocker; /* a TCP stream whose queue is full */
	int64_t close_deadline;
	struct buf in, out;
	struct stream *streams;
	struct watch w;
};

struct exec {
	struct exec *next;
	struct conn *conn; /* NULL once the connection is gone */
	uint32_t id;
	pid_t pid;
	int in_fd, out_fd, err_fd, errp_fd;
	bool in_reg, out_reg, err_reg;
	bool started, keepalive, timed_out, stdin_eof, dead;
	int64_t deadline; /* 0 = none */
	int64_t start_due; /* 0: the errpipe is watched (see START_HOLD_MS) */
	int64_t window;    /* per-exec flow control (0 = off): output bytes unacknowledged at most */
	int64_t unacked;   /* output bytes sent and not yet credited by the host */
	int64_t in_acked;  /* stdin bytes written to the child, not yet acknowledged */
	struct buf in_pend;
	char *argv0, *cwd; /* for the error message until started */
	struct watch w_out, w_err, w_in, w_errp;
	/* pty.c, ring.c: a pty's master is out_fd (and a dup of it in_fd) */
	bool pty, detached;
	bool out_paused;        /* flow: the starter's stream takes no output now */
	struct ring ring;       /* keepAlive execs only */
	struct attach *attaches;
	char *info;             /* procs: argv NUL-separated, then cwd, then tag */
	size_t info_argc;
	bool info_cut;          /* argv longer than INFO_MAX: the rest not kept */
};

static inline bool usable(const struct conn *c) { return c && !c->dead && !c->broken; }

/* ------------------------------------------------------------------ */
/* reply.c: JSON output into the header scratch buffer, then framed    */

void hb_lit(const char *s);
void hb_int(int64_t v);
void hb_esc(const char *s, size_t n);
void hb_str(const char *s, size_t n);
void hb_begin(const char *ev, uint32_t id);
void hb_key(const char *k);
void hb_kint(const char *k, int64_t v);
const char *hb_data(size_t *len);
void conn_send(struct conn *c, const void *payload, size_t plen);
void send_simple(struct conn *c, const char *ev, uint32_t id);
void send_error(struct conn *c, uint32_t id, int err, const char *msg, const char *path);
void send_ok_or_error(struct conn *c, uint32_t id, int err, const char *msg, const char *path);
void send_error_why(struct conn *c, uint32_t id, int err, const char *what, const char *subject);
ssize_t frame_read(struct conn *c, const char *ev, uint32_t id, int fd, size_t max);

/* ------------------------------------------------------------------ */
/* spawn.c: a command's child                                          */

/* What a command's child needs, on the agent's memory (the child shares it
 * until its execve: see spawn_child). */
struct spawn_args {
	char **argv, **envp, **shv;
	const char *path, *cwd;
	int in, out, err, rep;
	bool ctty; /* in is a pty slave: make it the controlling terminal */
	sigset_t oldmask;
};

void note_ignored_signals(void);
pid_t spawn_child(struct spawn_args *a);

/* ------------------------------------------------------------------ */
/* exec.c                                                              */

extern const char *g_default_path; /* PATH of requests that set none */
extern struct exec *g_execs, *g_dead_execs;

int kill_group(pid_t pid, int sig);
bool id_in_use(const struct conn *c, uint32_t id);
void exec_update_pipes(struct exec *e);
void conn_set_pipes_paused(struct conn *c, bool paused);
void conn_unblock(struct conn *c);
void exec_close_stdin(struct exec *e);
void exec_pump_stdin(struct exec *e);
int exec_read_pipe(struct exec *e, int which);
bool exec_check_started(struct exec *e, bool final);
void reap_all(void);
void op_exec(struct conn *c, uint32_t id, const struct jdoc *d);
void op_stdin(struct conn *c, uint32_t id, const struct jdoc *d, const char *pl, size_t pll);
void op_signal(struct conn *c, uint32_t id, const struct jdoc *d);
void op_credit(struct conn *c, uint32_t id, const struct jdoc *d);

/* ------------------------------------------------------------------ */
/* files.c and streams.c                                               */

extern int g_rootfd; /* --root: every file operation resolves inside it */

int ropen(const char *path, int flags, mode_t mode);
int ropen_walk(const char *path, int flags, mode_t mode);
void probe_openat2(void);
extern bool g_resolve_walk; /* resolve.c for every path: openat2 is missing, or --resolver walk */
char *split_path(const char *path, const char **parent, const char **base);
int mkdir_p(const char *path, mode_t last_mode);
const char *ftype(mode_t m);
int64_t mtime_ms(const struct stat *st);
void op_stat(struct conn *c, uint32_t id, const struct jdoc *d);
void op_mkdir(struct conn *c, uint32_t id, const struct jdoc *d);
void op_remove(struct conn *c, uint32_t id, const struct jdoc *d);

void stream_free(struct stream *s);
bool has_pumpable(const struct conn *c);
void conn_pump(struct conn *c);
void op_write(struct conn *c, uint32_t id, const struct jdoc *d);
void op_data(struct conn *c, uint32_t id, const char *pl, size_t pll);
void op_end(struct conn *c, uint32_t id);
void op_read(struct conn *c, uint32_t id, const struct jdoc *d);
void op_list(struct conn *c, uint32_t id, const struct jdoc *d);

/* ------------------------------------------------------------------ */
/* pty.c, ring.c, watch.c, rename.c                                    */

int pty_open(int64_t rows, int64_t cols, int *master, int *slave);
void op_resize(struct conn *c, uint32_t id, const struct jdoc *d);

struct exec *find_exec_pid(pid_t pid);
struct exec *find_exec_stream(const struct conn *c, uint32_t id);
struct exec *find_exec_target(const struct conn *c, const struct req *r);
bool exec_has_readers(const struct exec *e);
bool exec_readers_paused(const struct exec *e);
void exec_output(struct exec *e, int which, const char *p, size_t n);
void exec_send_all(struct exec *e); /* the header built, to the starter and every attach */
bool attach_end(struct conn *c, uint32_t id);
void attach_drop_conn(struct conn *c);
void exec_free_extras(struct exec *e);
int exec_keep_info(struct exec *e, const struct req *r);
void op_attach(struct conn *c, uint32_t id, const struct jdoc *d);
void op_procs(struct conn *c, uint32_t id, const struct jdoc *d);

void op_watch(struct conn *c, uint32_t id, const struct jdoc *d);
bool watch_end(struct conn *c, uint32_t id);
bool watch_id_in_use(const struct conn *c, uint32_t id);
void watch_read(struct watcher *w);
void watch_update_conn(struct conn *c);
void watch_drop_conn(struct conn *c);
void watch_free_dead(void);

void op_rename(struct conn *c, uint32_t id, const struct jdoc *d);

bool exec_stream_set_paused(struct conn *c, uint32_t id, bool paused);
bool watch_set_paused(struct conn *c, uint32_t id, bool paused);
bool stream_set_paused(struct conn *c, uint32_t id, bool paused);
void op_flow(struct conn *c, uint32_t id, const struct jdoc *d);
/* tcp.c                                                               */

extern struct stream *g_dead_streams;
void op_connect(struct conn *c, uint32_t id, const struct jdoc *d);
void tcp_data(struct conn *c, struct stream *s, const char *pl, size_t pll);
void tcp_end(struct stream *s);
void op_close(struct conn *c, uint32_t id);
void tcp_event(struct stream *s, uint32_t ev);
void tcp_free(struct stream *s);
void tcp_update_conn(struct conn *c);

/* ------------------------------------------------------------------ */
/* conn.c                                                              */

extern struct conn *g_conns, *g_dead_conns;

void conn_destroy(struct conn *c);
bool req_get(struct conn *c, uint32_t id, int op, const struct jdoc *d, struct req *r);
void conn_process_input(struct conn *c);
void conn_read(struct conn *c);
void conn_flush(struct conn *c);
struct conn *conn_new(int fd);

/* ------------------------------------------------------------------ */
/* main.c: the loop's state                                            */

extern int g_ep;
extern bool g_shutdown; /* SIGTERM or SIGINT came: no new execs */
extern int64_t g_now;  /* now_ms() at the start of this tick */

int ep_ctl(int op, int fd, uint32_t events, struct watch *w);

#endif
