/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The attach protocol on kmon's control socket (AF_UNIX, SOCK_SEQPACKET, so
 * one message is one datagram and a short or long one is seen as such).
 *
 *   consumer -> agent   struct kmon_hello (exactly this size)
 *   agent -> consumer   struct kmon_hello_reply, step KMON_STEP_OFFER; when
 *                       status is OK, with SCM_RIGHTS carrying four
 *                       descriptors in this order: ring data (read-only),
 *                       ring ctl (read-write), wake-up socket, and the
 *                       kernel symbol table (a sealed memfd of names only,
 *                       shm/symtab.h; the same one for every consumer)
 *   consumer -> agent   struct kmon_ready, after checking the descriptors and
 *                       mapping them with every page populated (it pays for
 *                       its ring: shm/ring.h)
 *   agent -> consumer   struct kmon_hello_reply, step KMON_STEP_ATTACHED:
 *                       OK (the ring header is valid, records follow) or why
 *                       not (e.g. KMON_HELLO_NOT_POPULATED); with
 *                       KMON_REPLY_F_SHARED in flags, SCM_RIGHTS carries one
 *                       descriptor: the shared history (read-only,
 *                       shm/history.h), where the consumer reads its events
 *                       from the JOIN record in its ring on
 *
 * After that the socket carries nothing; it stays open as the liveness link:
 * either side closing it (or dying) ends the attachment, and the agent then
 * frees that consumer's ring.
 *
 * Compatibility: both ends must speak the same version. The agent answers a
 * hello of another version with KMON_HELLO_BAD_VERSION (the magic, version
 * and status fields keep their place in every version), and a consumer
 * refuses a reply of another version; upgrade consumers with the agent.
 * Version 2 added the ready step, the step field and statuses 6-8.
 * Version 3 added the fourth descriptor, the symbol table.
 * Version 4 added the shared history: KMON_HELLO_F_SHARED, the reply's flags
 * and its descriptor.
 *
 * Fixed-size little-endian structs (both ends share a machine), validated
 * field by field by kmon_hello_check() before anything is used.
 */
#ifndef KMON_SHM_PROTO_H
#define KMON_SHM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define KMON_PROTO_MAGIC 0x4e4f4d4bu /* "KMON" */
#define KMON_PROTO_VERSION 4
#define KMON_PROTO_NAME_MAX 64
#define KMON_PROTO_NS_MAX 16     /* namespaces per subscription */
#define KMON_PROTO_NS_LEN 64     /* DNS label (63) + NUL */
#define KMON_PROTO_ERR_MAX 200
#define KMON_PROTO_NODE_MAX 254
#define KMON_PROTO_PATH_MAX 108  /* control socket path with its NUL (sun_path) */

struct kmon_hello {
	uint32_t magic;
	uint16_t version;
	uint16_t n_namespaces;
	uint32_t event_mask; /* KMON_EV_MASK bits; 0 = every type */
	uint32_t flags;      /* enum kmon_hello_flags; no other bit */
	uint64_t ring_bytes; /* 0 = agent default */
	uint64_t replay_bytes;
	char name[KMON_PROTO_NAME_MAX];
	char namespaces[KMON_PROTO_NS_MAX][KMON_PROTO_NS_LEN];
};
_Static_assert(sizeof(struct kmon_hello) == 1120, "kmon_hello size");
_Static_assert(__builtin_offsetof(struct kmon_hello, event_mask) == 8, "kmon_hello.event_mask");
_Static_assert(__builtin_offsetof(struct kmon_hello, ring_bytes) == 16, "kmon_hello.ring_bytes");
_Static_assert(__builtin_offsetof(struct kmon_hello, replay_bytes) == 24, "kmon_hello.replay_bytes");
_Static_assert(__builtin_offsetof(struct kmon_hello, name) == 32, "kmon_hello.name");
_Static_assert(__builtin_offsetof(struct kmon_hello, namespaces) == 96, "kmon_hello.namespaces");

enum kmon_hello_flags {
	/* The consumer can read its events from the shared history (granted
	 * for a subscription without namespaces: KMON_REPLY_F_SHARED). */
	KMON_HELLO_F_SHARED = 1u << 0,
};

enum kmon_reply_flags {
	KMON_REPLY_F_SHARED = 1u << 0, /* ATTACHED: the history's descriptor is attached */
};

enum kmon_hello_status {
	KMON_HELLO_OK = 0,
	KMON_HELLO_BAD_MESSAGE = 1, /* malformed: size, magic, flags, strings */
	KMON_HELLO_BAD_VERSION = 2,
	KMON_HELLO_TOO_BIG = 3,     /* ring or replay larger than the agent allows */
	KMON_HELLO_TOO_MANY = 4,    /* consumer limit reached */
	KMON_HELLO_INTERNAL = 5,    /* the agent could not set the ring up */
	KMON_HELLO_NO_BUDGET = 6,   /* rings would exceed --shm-budget; retry later */
	KMON_HELLO_UID_LIMIT = 7,   /* this uid has its maximum of consumers; retry later */
	KMON_HELLO_NOT_POPULATED = 8, /* ready, but the ring's pages were not faulted in */
};

/* True for refusals that may succeed later (others will be refused again). */
static inline int kmon_hello_status_retryable(unsigned s)
{
	return s == KMON_HELLO_TOO_MANY || s == KMON_HELLO_NO_BUDGET || s == KMON_HELLO_UID_LIMIT ||
	       s == KMON_HELLO_INTERNAL;
}

enum kmon_reply_step {
	KMON_STEP_OFFER = 1,    /* the hello's answer (with the ring when OK) */
	KMON_STEP_ATTACHED = 2, /* the ready's answer */
};

struct kmon_ready {
	uint32_t magic;
	uint16_t version;
	uint16_t flags; /* none defined; must be 0 */
};
_Static_assert(sizeof(struct kmon_ready) == 8, "kmon_ready size");

struct kmon_hello_reply {
	uint32_t magic;
	uint16_t version;
	uint16_t status;
	uint32_t consumer_id;
	uint32_t step;         /* enum kmon_reply_step */
	uint64_t ring_bytes;   /* granted data-area size */
	uint64_t replay_bytes; /* history actually replayed */
	char node[KMON_PROTO_NODE_MAX];
	char error[KMON_PROTO_ERR_MAX]; /* status != OK: why, for the consumer's log */
	uint16_t flags;                 /* enum kmon_reply_flags */
};
_Static_assert(sizeof(struct kmon_hello_reply) == 488, "kmon_hello_reply size");
_Static_assert(__builtin_offsetof(struct kmon_hello_reply, status) == 6, "reply.status");
_Static_assert(__builtin_offsetof(struct kmon_hello_reply, step) == 12, "reply.step");
_Static_assert(__builtin_offsetof(struct kmon_hello_reply, ring_bytes) == 16, "reply.ring_bytes");
_Static_assert(__builtin_offsetof(struct kmon_hello_reply, node) == 32, "reply.node");
_Static_assert(__builtin_offsetof(struct kmon_hello_reply, error) == 286, "reply.error");
_Static_assert(__builtin_offsetof(struct kmon_hello_reply, flags) == 486, "reply.flags");

/* Validates a received hello of msg_len bytes against the agent's limits.
 * Returns KMON_HELLO_OK, or a status with a one-line reason in err. */
enum kmon_hello_status kmon_hello_check(const void *msg, size_t msg_len, uint64_t max_ring_bytes,
					uint64_t max_replay_bytes, char *err, size_t errlen);
/* Validates a reply from the agent; returns 0 or -EPROTO with err set. */
int kmon_hello_reply_check(const void *msg, size_t msg_len, char *err, size_t errlen);
/* Validates a ready message; 0 or -EPROTO with a reason in err. */
int kmon_ready_check(const void *msg, size_t msg_len, char *err, size_t errlen);
const char *kmon_hello_status_name(enum kmon_hello_status s);

#define KMON_PROTO_FDS 4 /* ring data (read-only), ring ctl, wake-up socket, symbol table */

/* One datagram with n_fds (0..KMON_PROTO_FDS) descriptors attached, never
 * blocking and never raising SIGPIPE. Returns bytes sent or -errno. */
long kmon_proto_send(int sock, const void *msg, size_t len, const int *fds, unsigned n_fds);
/* One datagram into buf; attached descriptors go to fds[] (close-on-exec;
 * any beyond KMON_PROTO_FDS are closed), *n_fds says how many. Returns the
 * datagram's real length (larger than len means it was truncated), 0 at
 * end of stream, or -errno. flags: e.g. MSG_DONTWAIT. */
long kmon_proto_recv(int sock, void *buf, size_t len, int fds[KMON_PROTO_FDS], unsigned *n_fds,
		     int flags);

#endif
