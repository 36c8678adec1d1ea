/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The control socket: where unprivileged consumers attach (shm/proto.h).
 * Runs on the agent's libuv loop; every peer is untrusted: hellos are
 * validated field by field, silent peers time out, connections beyond the
 * limits (in all and per peer uid) are refused, rings beyond the
 * shared-memory budget are refused in the hello reply, a consumer must
 * populate its ring itself (so it, not the agent, is charged for it), and a
 * consumer whose socket closes is detached and its ring freed at once.
 *
 * The socket's directory is the agent's: created (or taken over) owned by
 * the agent's uid and the socket group, mode 0750, so nobody outside the
 * group can enter it and nobody but the agent can unlink or replace the
 * socket. A parent that others may write without the sticky bit (an
 * emptyDir is 0777) would let them rename the directory away: unless the
 * directory is a mount point, the agent adds the sticky bit to that parent.
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
	size_t default_ring_bytes; /* when a hello asks for 0 */
	size_t history_bytes;
	unsigned max_pending; /* connections that have not said hello yet; default 32 */
	unsigned max_pending_per_uid;   /* of those, from one uid; default 4 */
	unsigned max_consumers_per_uid; /* attached or attaching, one uid; default 8 */
	unsigned max_consumers; /* attached or attaching in all (the fan-out's limit); 0 = no check */
	size_t shm_budget;    /* ring bytes (header+data+ctl) at once; default 256 MiB */
	double hello_timeout; /* seconds for the hello, then for the ready; default 5 */
	int symtab_fd; /* the sealed symbol table every offer carries (shared, not copied) */
};

/* What was refused and why: every refusal is counted (shown in /metrics). */
struct control_stats {
	uint64_t refused_pending;  /* connections over the (per-uid) pending limits */
	uint64_t refused_uid;      /* hellos over --max-consumers-per-uid */
	uint64_t refused_budget;   /* hellos over --shm-budget */
	uint64_t refused_populate; /* readies for rings the consumer had not faulted in */
	size_t shm_bytes;          /* rings offered or attached, header+data+ctl */
	size_t shm_budget;
};

/* Creates and binds the socket (needs the privilege to chown it, so call it
 * before dropping capabilities). NULL with a reason in err. */
struct control *control__new(const struct control_opts *opts, char *err, size_t errlen);
/* Wakes the loop to detach consumers the fan-out marked bad (any thread). */
void control__notify_bad(struct control *c);
/* Loop thread only. */
void control__get_stats(const struct control *c, struct control_stats *out);
/* Detaches everyone, removes the socket file, closes the handles. */
void control__close(struct control *c);

#endif
