/*
 * libFuzzer target for what the agent does with a connection's bytes
 * before any effect: frame lengths (frame_next), the header's JSON, id and
 * op (request_parse), each op's fields (req_check, which builds an exec's
 * argv and environment), and the error replies built from them (reply.c).
 * It links util.c, json.c, reply.c and request.c only: no socket, no fork.
 *
 * The input is a connection's byte stream, taken as frames until one is
 * incomplete or its lengths are out of bounds, as conn_process_input takes
 * them; or, when its first byte is not 0, one frame's header. Besides the sanitizers (ASan, UBSan, LeakSanitizer) it checks that
 * every reply header the agent would send is a JSON object with "ev" and
 * "id", parsed back by the agent's own parser, and no longer than
 * MAX_HEADER (a longer one would drop the connection).
 *
 * Built and run for 30 s by src/agent/agent-fuzz.test.ts:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
 *         -I.. fuzz_request.c ../util.c ../json.c ../reply.c ../request.c
 *   ./a.out -dict=request.dict -max_len=16384 CORPUS seeds regressions
 * seeds/ are valid frames (a few requests each, the odd values included)
 * and one bare header; regressions/, where present, holds inputs that once
 * found a bug, named after it (none so far: 3.4 million inputs in 5 min
 * found nothing when this target was written).
 */
#include "agent.h"

/* The reply just built into the header scratch buffer must parse back. */
static void check_reply(void)
{
	size_t n;
	const char *h = hb_data(&n);
	if (n > MAX_HEADER) {
		fprintf(stderr, "fuzz: a reply header of %zu bytes (max %u)\n", n, MAX_HEADER);
		abort();
	}
	struct jdoc d;
	const char *ev;
	size_t evl;
	int64_t id;
	if (jparse(&d, h, n) < 0 || d.n[0].type != J_OBJ || get_str(&d, "ev", &ev, &evl) != 1 ||
	    get_int(&d, "id", &id) != 1) {
		fprintf(stderr, "fuzz: a reply header that is not valid: %.*s\n", (int)(n > 300 ? 300 : n), h);
		abort();
	}
	jfree(&d);
}

static void error_reply(uint32_t id, int err, const char *msg, const char *path)
{
	send_error(NULL, id, err, msg, path); /* no connection: built, not sent */
	check_reply();
}

/* What an exec's argv and environment must be for execve. */
static void check_exec(const struct req *r)
{
	if (!r->argv || !r->argv[0] || !r->envp || !r->envpath || !r->cwd || r->cwd[0] != '/')
		abort();
	size_t argc = 0;
	while (r->argv[argc])
		argc++;
	for (size_t k = 1; k < argc; k++) /* the /bin/sh fallback argv */
		if (r->shv[k + 1] != r->argv[k])
			abort();
	bool path = false, home = false;
	for (char **e = r->envp; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq || eq == *e)
			abort();
		path |= !strncmp(*e, "PATH=", 5);
		home |= !strncmp(*e, "HOME=", 5);
	}
	if (!path || !home)
		abort();
}

static void one_frame(const char *h, size_t hl)
{
	struct jdoc d;
	uint32_t id;
	int op = 0;
	const char *msg;
	int err = request_parse(&d, h, hl, &id, &op, &msg);
	if (err < 0) {
		error_reply(0, EPROTO, "frame header is not a JSON object", NULL);
	} else if (err) {
		error_reply(id, err, msg, NULL);
	} else {
		struct req r;
		err = req_check(op, &d, DEFAULT_PATH, &r, &msg);
		if (err) {
			error_reply(id, err, msg, NULL);
		} else if (op == OP_EXEC) {
			check_exec(&r);
			/* the errors that echo the request back */
			send_error_why(NULL, id, ENOENT, "cannot execute", r.argv[0]);
			check_reply();
			send_error_why(NULL, id, ENOENT, "cannot change directory to", r.cwd);
			check_reply();
		} else if (r.path) {
			error_reply(id, ENOENT, NULL, r.path);
		}
		req_free(&r);
	}
	jfree(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	/* A frame's first byte is 0 (a header is at most 64 KiB). Any other
	 * first byte: the input is one header, so that mutations which change
	 * its length still reach the parser (in a frame they would mostly
	 * break the length prefix, and the frame would just be incomplete). */
	if (size && p[0] != 0) {
		if (size <= MAX_HEADER)
			one_frame(p, size);
		return 0;
	}
	for (;;) {
		uint32_t hl, pl;
		int whole = frame_next(p, size, &hl, &pl);
		if (whole < 0)
			error_reply(0, EPROTO, "bad frame lengths", NULL);
		if (whole <= 0)
			return 0;
		one_frame(p + 8, hl);
		p += 8 + (size_t)hl + pl;
		size -= 8 + (size_t)hl + pl;
	}
}
