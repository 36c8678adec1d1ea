/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The control socket: where unprivileged consumers attach (shm/proto.h).
 * Runs on the agent's libuv loop; every peer is untrusted: hellos are
 * validated field by field, silent peers time out, connections beyond the
 * limit are refused, and a consumer whose socket closes is detached and its
 * ring freed at once.
 */
#ifndef KMON_AGENT_CONTROL_H
#define KMON_AGENT_CONTROL_H

#include <stddef.h>
#include <uv.h>

struct fanout;
struct control;

struct control_opts {
	size_t sz;
	uv_loop_t *loop;
	struct fanout *fanout;
	const char *path;
	const char *group; /* NULL: keep the agent's group */
	unsigned mode;
	const char *node_name;
	size_t max_ring_bytes;
	size_t history_bytes;
	unsigned max_pending; /* connections that have not said hello yet; default 32 */
	double hello_timeout; /* seconds; default 5 */
};

/* Creates and binds the socket (needs the privilege to chown it, so call it
 * before dropping capabilities). NULL with a reason in err. */
struct control *control__new(const struct control_opts *opts, char *err, size_t errlen);
/* Wakes the loop to detach consumers the fan-out marked bad (any thread). */
void control__notify_bad(struct control *c);
/* Detaches everyone, removes the socket file, closes the handles. */
void control__close(struct control *c);

#endif
