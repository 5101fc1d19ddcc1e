/*
 * corral-agent: what a frame and a request must be. The frame's lengths,
 * the header's id and op, and each op's fields are checked and decoded
 * here with no I/O and no agent state, so the fuzz target
 * (fuzz_request.c) drives this file alone. The ops call req_check where
 * their order of checks puts it (exec looks at the shutdown and the id
 * first), so the replies are the ones the agent always gave.
 */
#include "agent.h"

/* The frame at p (avail bytes there): 1 = whole (lengths in *hl and *pl),
 * 0 = more bytes needed, -1 = lengths out of bounds (a protocol error). */
int frame_next(const char *p, size_t avail, uint32_t *hl, uint32_t *pl)
{
	if (avail < 8)
		return 0;
	*hl = get32(p);
	*pl = get32(p + 4);
	if (*hl < 1 || *hl > MAX_HEADER || *pl > MAX_PAYLOAD)
		return -1;
	return avail >= 8 + (size_t)*hl + *pl;
}

/* Parses a frame's header into d (which the caller frees whatever this
 * returns). 0: *id and *op are set. -1: not a JSON object (a protocol
 * error). Else the errno to reply with on *id (0 when the id is bad). */
int request_parse(struct jdoc *d, const char *h, size_t hl, uint32_t *id, int *op, const char **msg)
{
	static const struct { const char *name; int op; } ops[] = {
		{"data", OP_DATA}, {"stdin", OP_STDIN}, {"end", OP_END}, {"hello", OP_HELLO},
		{"exec", OP_EXEC}, {"signal", OP_SIGNAL}, {"write", OP_WRITE}, {"read", OP_READ},
		{"stat", OP_STAT}, {"list", OP_LIST}, {"mkdir", OP_MKDIR}, {"remove", OP_REMOVE},
		{"resize", OP_RESIZE}, {"attach", OP_ATTACH}, {"procs", OP_PROCS}, {"watch", OP_WATCH},
		{"rename", OP_RENAME}, {"flow", OP_FLOW}, {"connect", OP_CONNECT}, {"close", OP_CLOSE},
		{"credit", OP_CREDIT},
	};
	if (jparse(d, h, hl) < 0 || d->n[0].type != J_OBJ)
		return -1;
	int64_t id64 = 0;
	const char *name;
	size_t namel;
	*id = 0;
	if (get_int(d, "id", &id64) != 1 || id64 < 1 || id64 > INT32_MAX) {
		*msg = "request without a valid id";
		return EPROTO;
	}
	*id = (uint32_t)id64;
	if (get_str(d, "op", &name, &namel) != 1) {
		*msg = "request without an op";
		return EPROTO;
	}
	/* strcmp: the name ends at its first NUL, as it always has */
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
		if (!strcmp(name, ops[k].name)) {
			*op = ops[k].op;
			return 0;
		}
	*msg = "unknown op";
	return EPROTO;
}

/* "path": absolute, no NUL, shorter than PATH_MAX. */
static int check_path(const struct jdoc *d, struct req *r, const char **msg)
{
	const char *p;
	size_t l;
	if (get_str(d, "path", &p, &l) != 1) {
		*msg = "path must be a string";
		return EPROTO;
	}
	if (!l || p[0] != '/' || has_nul(p, l)) {
		*msg = "path must be absolute and hold no NUL";
		return EINVAL;
	}
	if (l >= PATH_MAX)
		return ENAMETOOLONG;
	r->path = p;
	return 0;
}

static int check_mode(int64_t mode, const char **msg)
{
	if (mode < 0 || mode > 07777) {
		*msg = "bad mode";
		return EINVAL;
	}
	return 0;
}

/* A terminal size: rows and cols 1..65535 (a struct winsize holds u16). */
static int check_size(const struct jdoc *d, int obj, struct req *r, const char **msg)
{
	int ir = jget(d, obj, "rows"), ic = jget(d, obj, "cols");
	if (ir < 0 || ic < 0 || d->n[ir].type != J_NUM || d->n[ic].type != J_NUM || !d->n[ir].isint || !d->n[ic].isint) {
		*msg = "a terminal size needs integer rows and cols";
		return EPROTO;
	}
	r->rows = d->n[ir].i;
	r->cols = d->n[ic].i;
	if (r->rows < 1 || r->rows > 65535 || r->cols < 1 || r->cols > 65535) {
		*msg = "rows and cols must be 1..65535";
		return EINVAL;
	}
	return 0;
}

/* exec's "pty":{"rows":R,"cols":C} (or null), "detached", "tag". */
static int check_exec_pty(const struct jdoc *d, struct req *r, const char **msg)
{
	int ip = jget(d, 0, "pty");
	if (ip >= 0 && d->n[ip].type == J_OBJ) {
		int err = check_size(d, ip, r, msg);
		if (err)
			return err;
		r->pty = true;
	} else if (ip >= 0 && d->n[ip].type != J_NULL && d->n[ip].type != J_FALSE) {
		*msg = "pty must be an object with rows and cols";
		return EPROTO;
	}
	if (get_bool(d, "detached", &r->detached) < 0 || get_str(d, "tag", &r->tag, &r->tagl) < 0) {
		*msg = "malformed exec request";
		return EPROTO;
	}
	if (r->tag && (r->tagl > TAG_MAX || has_nul(r->tag, r->tagl))) {
		*msg = "tag must be at most 256 bytes without NUL";
		return EINVAL;
	}
	return 0;
}

/* "pid" of an existing process, optional: 0 when absent. */
static int check_pid(const struct jdoc *d, struct req *r, const char **msg)
{
	int g = get_int(d, "pid", &r->pid);
	if (g < 0 || (g == 1 && (r->pid < 1 || r->pid > INT32_MAX))) {
		*msg = "pid must be a positive integer";
		return EPROTO;
	}
	return 0;
}

/* argv (or cmd run by /bin/sh -c), cwd, env, stdin, keepAlive, timeoutMs.
 * Builds argv, shv and envp; returns ENOMEM if it cannot. */
static int check_exec(const struct jdoc *d, const char *default_path, struct req *r, const char **msg)
{
	const char *cmd = NULL;
	size_t cmdl = 0;
	r->cwd = "/";
	r->cwdl = 1;
	r->envpath = default_path;
	int ia = jget(d, 0, "argv"), ie = jget(d, 0, "env");
	if (ia >= 0 && d->n[ia].type == J_NULL)
		ia = -1;
	if (ie >= 0 && d->n[ie].type == J_NULL)
		ie = -1;
	int rc = get_str(d, "cmd", &cmd, &cmdl), rw = get_str(d, "cwd", &r->cwd, &r->cwdl);
	int it = jget(d, 0, "timeoutMs");
	if ((ia >= 0 && d->n[ia].type != J_ARR) || (ie >= 0 && d->n[ie].type != J_OBJ) || rc < 0 || rw < 0 ||
	    (it >= 0 && d->n[it].type != J_NUM && d->n[it].type != J_NULL) ||
	    get_bool(d, "stdin", &r->want_stdin) < 0 || get_bool(d, "keepAlive", &r->keepalive) < 0 ||
	    get_int(d, "window", &r->window) < 0) {
		*msg = "malformed exec request";
		return EPROTO;
	}
	if (r->window < 0 || r->window > (int64_t)WINDOW_MAX) {
		*msg = "window must be 0..1048576";
		return EINVAL;
	}
	if (it >= 0 && d->n[it].type == J_NUM) {
		/* any positive number; fractions round up; capped at ~31 years */
		double t = d->n[it].isint ? (double)d->n[it].i : d->n[it].d;
		if (t > 1e12)
			r->timeout = (int64_t)1e12;
		else if (t > 0)
			r->timeout = (int64_t)t + ((double)(int64_t)t < t ? 1 : 0);
	}
	if (ia < 0 && rc != 1) {
		*msg = "exec needs argv or cmd";
		return EPROTO;
	}
	int err = check_exec_pty(d, r, msg);
	if (err)
		return err;
	if (rw == 1 && (r->cwdl == 0 || r->cwd[0] != '/' || has_nul(r->cwd, r->cwdl))) {
		*msg = "cwd must be an absolute path";
		return EINVAL;
	}

	/* argv */
	size_t argc = 0;
	if (ia >= 0) {
		for (int k = d->n[ia].child; k >= 0; k = d->n[k].next) {
			if (d->n[k].type != J_STR) {
				*msg = "argv must be an array of strings";
				return EPROTO;
			}
			if (has_nul(d->n[k].s, d->n[k].slen)) {
				*msg = "argv holds a NUL byte";
				return EINVAL;
			}
			argc++;
		}
		if (!argc) {
			*msg = "argv is empty";
			return EINVAL;
		}
	} else {
		if (has_nul(cmd, cmdl)) {
			*msg = "cmd holds a NUL byte";
			return EINVAL;
		}
		argc = 3;
	}
	*msg = "cannot start the process"; /* for ENOMEM */
	r->argv = calloc(argc + 1, sizeof *r->argv);
	r->shv = calloc(argc + 2, sizeof *r->shv);
	if (!r->argv || !r->shv)
		return ENOMEM;
	if (ia >= 0) {
		size_t k = 0;
		for (int n = d->n[ia].child; n >= 0; n = d->n[n].next)
			r->argv[k++] = (char *)d->n[n].s;
	} else {
		r->argv[0] = "/bin/sh";
		r->argv[1] = "-c";
		r->argv[2] = (char *)cmd;
	}
	r->shv[0] = "/bin/sh";
	for (size_t k = 1; k < argc; k++)
		r->shv[k + 1] = r->argv[k];

	/* environment: "K=V" strings in one block, PATH and HOME defaulted */
	size_t envc = 0, envsz = 0;
	bool has_path = false, has_home = false;
	if (ie >= 0) {
		for (int k = d->n[ie].child; k >= 0; k = d->n[k].next) {
			const struct jnode *x = &d->n[k];
			if (x->type != J_STR) {
				*msg = "env values must be strings";
				return EPROTO;
			}
			if (!x->klen || memchr(x->key, '=', x->klen) || has_nul(x->key, x->klen) || has_nul(x->s, x->slen)) {
				*msg = "bad env variable name or value";
				return EINVAL;
			}
			envc++;
			envsz += x->klen + x->slen + 2;
		}
	}
	*msg = "cannot start the process";
	r->envp = calloc(envc + 3, sizeof *r->envp);
	r->envblk = malloc(envsz + sizeof "PATH=" + strlen(default_path) + sizeof "HOME=/root");
	if (!r->envp || !r->envblk)
		return ENOMEM;
	char *w = r->envblk;
	size_t k = 0;
	if (ie >= 0) {
		for (int n = d->n[ie].child; n >= 0; n = d->n[n].next) {
			const struct jnode *x = &d->n[n];
			/* a repeated key: the last one wins, like JSON.parse */
			if (jget(d, ie, x->key) != n)
				continue;
			r->envp[k++] = w;
			memcpy(w, x->key, x->klen);
			w += x->klen;
			*w++ = '=';
			memcpy(w, x->s, x->slen + 1);
			w += x->slen + 1;
			if (x->klen == 4 && !memcmp(x->key, "PATH", 4)) {
				has_path = true;
				r->envpath = x->s;
			}
			if (x->klen == 4 && !memcmp(x->key, "HOME", 4))
				has_home = true;
		}
	}
	if (!has_path) {
		r->envp[k++] = w;
		w += sprintf(w, "PATH=%s", default_path) + 1;
	}
	if (!has_home) {
		r->envp[k++] = w;
		memcpy(w, "HOME=/root", sizeof "HOME=/root");
	}
	return 0;
}

/* The fields of op in d, checked and decoded into r (strings point into
 * d). 0, or the errno to reply with and *msg (NULL: strerror's text). Call
 * req_free after it either way. default_path: PATH when env sets none. */
int req_check(int op, const struct jdoc *d, const char *default_path, struct req *r, const char **msg)
{
	int err;
	memset(r, 0, sizeof *r);
	*msg = NULL;
	switch (op) {
	case OP_EXEC:
		return check_exec(d, default_path, r, msg);
	case OP_STDIN:
		if (get_bool(d, "eof", &r->eof) < 0) {
			*msg = "eof must be a boolean";
			return EPROTO;
		}
		return check_pid(d, r, msg);
	case OP_CREDIT:
		if (get_int(d, "bytes", &r->window) != 1 || r->window < 0) {
			*msg = "credit needs a non-negative integer bytes";
			return EPROTO;
		}
		return 0;
	case OP_SIGNAL:
		if ((err = check_pid(d, r, msg)))
			return err;
		if ((!r->pid && get_int(d, "target", &r->target) != 1) || get_int(d, "signal", &r->signal) != 1) {
			*msg = "signal needs an integer target (or pid) and signal";
			return EPROTO;
		}
		if (r->signal < 0 || r->signal > 64) {
			*msg = "bad signal number";
			return EINVAL;
		}
		return 0;
	case OP_WRITE:
		r->mode = 0644;
		if ((err = check_path(d, r, msg)))
			return err;
		if (get_int(d, "mode", &r->mode) < 0 || get_bool(d, "append", &r->append) < 0 ||
		    get_bool(d, "mkdirs", &r->mkdirs) < 0) {
			*msg = "malformed write request";
			return EPROTO;
		}
		return check_mode(r->mode, msg);
	case OP_READ:
		r->length = -1;
		if ((err = check_path(d, r, msg)))
			return err;
		if (get_int(d, "offset", &r->offset) < 0 || get_int(d, "length", &r->length) < 0) {
			*msg = "offset and length must be integers";
			return EPROTO;
		}
		if (r->offset < 0) {
			*msg = "negative offset";
			return EINVAL;
		}
		return 0;
	case OP_LIST:
		return check_path(d, r, msg);
	case OP_STAT:
		r->follow = true;
		if ((err = check_path(d, r, msg)))
			return err;
		if (get_bool(d, "follow", &r->follow) < 0) {
			*msg = "follow must be a boolean";
			return EPROTO;
		}
		return 0;
	case OP_MKDIR:
		r->mode = 0755;
		if ((err = check_path(d, r, msg)))
			return err;
		if (get_bool(d, "parents", &r->parents) < 0 || get_int(d, "mode", &r->mode) < 0) {
			*msg = "malformed mkdir request";
			return EPROTO;
		}
		return check_mode(r->mode, msg);
	case OP_REMOVE:
		if ((err = check_path(d, r, msg)))
			return err;
		if (get_bool(d, "recursive", &r->recursive) < 0) {
			*msg = "recursive must be a boolean";
			return EPROTO;
		}
		return 0;
	case OP_RESIZE:
		if ((err = check_pid(d, r, msg)))
			return err;
		if (!r->pid && get_int(d, "target", &r->target) != 1) {
			*msg = "resize needs an integer target (or pid)";
			return EPROTO;
		}
		return check_size(d, 0, r, msg);
	case OP_ATTACH:
		if ((err = check_pid(d, r, msg)))
			return err;
		if (!r->pid) {
			*msg = "attach needs a pid";
			return EPROTO;
		}
		return 0;
	case OP_WATCH:
		if ((err = check_path(d, r, msg)))
			return err;
		if (get_bool(d, "recursive", &r->recursive) < 0) {
			*msg = "recursive must be a boolean";
			return EPROTO;
		}
		return 0;
	case OP_RENAME: {
		if ((err = check_path(d, r, msg)))
			return err;
		const char *to;
		size_t tol;
		if (get_str(d, "to", &to, &tol) != 1 || get_bool(d, "noReplace", &r->noreplace) < 0) {
			*msg = "rename needs a string path and to";
			return EPROTO;
		}
		if (!tol || to[0] != '/' || has_nul(to, tol)) {
			*msg = "to must be absolute and hold no NUL";
			return EINVAL;
		}
		if (tol >= PATH_MAX)
			return ENAMETOOLONG;
		r->to = to;
		return 0;
	}
	case OP_FLOW:
		if (get_bool(d, "pause", &r->pause) != 1) {
			*msg = "flow needs a boolean pause";
			return EPROTO;
		}
		return 0;
	case OP_CONNECT:
		if (get_int(d, "port", &r->port) != 1 || r->port < 1 || r->port > 65535) {
			*msg = "port must be an integer from 1 to 65535";
			return r->port ? EINVAL : EPROTO;
		}
		return 0;
	default: /* data, end, hello, procs, close: nothing to check */
		return 0;
	}
}

void req_free(struct req *r)
{
	free(r->argv);
	free(r->shv);
	free(r->envp);
	free(r->envblk);
	r->argv = r->shv = r->envp = NULL;
	r->envblk = NULL;
}
