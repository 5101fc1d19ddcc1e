/*
 * corral-agent: the flow op. {"op":"flow","id":N,"pause":true|false}
 * stops (and starts again) the output of one stream of this connection:
 * an exec's, to its starter or to an attach stream (its pipes are not read
 * meanwhile, so the command blocks as it would on a full terminal), a
 * watch's (inotify is not read: the kernel queues, then reports an
 * overflow), a read's or list's. No reply; an id of no such stream is
 * ignored (it may have just ended). A connection that carries the
 * streams of several readers (the shim's mux of a microVM) pauses the one
 * that falls behind instead of the whole connection.
 */
#include "agent.h"

void op_flow(struct conn *c, uint32_t id, const struct jdoc *d)
{
	struct req r;
	if (!req_get(c, id, OP_FLOW, d, &r))
		return;
	if (!exec_stream_set_paused(c, id, r.pause) && !watch_set_paused(c, id, r.pause))
		stream_set_paused(c, id, r.pause);
}
