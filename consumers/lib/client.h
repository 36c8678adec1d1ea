/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The consumer side of kmon, shared by kmon-forward, kmon-aggregate and any
 * other unprivileged program: connect to the agent's control socket, say
 * hello, map the ring it gets back, decode records, keep the META dictionary,
 * count what was lost, and reconnect with backoff when the agent goes away.
 * Runs on the caller's libuv loop; wakes up through uv_poll on the wake-up
 * socket, except under a flood: after a wake-up that brought 1,024 records
 * or more, it reads again 2 ms later on a timer instead of asking to be
 * woken (records then wait up to 2 ms; a wake-up per few of the agent's
 * batches cost more than reading them), where its ring or the shared
 * history holds 16,384 records or more. Every descriptor the agent sends is checked (type, seals, size) before
 * it is mapped, and the ring is faulted in by this process: its memory limit
 * must cover the ring (shm/ring.h).
 */
#ifndef KMON_CONSUMERS_CLIENT_H
#define KMON_CONSUMERS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct kmon_event;
struct kmon_meta;
struct kmon_client;
struct kmon_symtab;

enum kmon_client_state {
	KMON_CLIENT_CONNECTING = 0,
	KMON_CLIENT_ATTACHED,     /* hello accepted, ring mapped */
	KMON_CLIENT_DISCONNECTED, /* agent went away; reconnecting with backoff */
	KMON_CLIENT_REFUSED,      /* refused for good (why says what); no retry. Budget and
				   * per-uid limits are retried with backoff instead. */
};

/* Why the state last changed, as a code: programs decide (retry, exit code)
 * from this, never from the English of `why`. */
enum kmon_client_reason {
	KMON_REASON_NONE = 0,
	KMON_REASON_AGENT_GONE,     /* the agent closed the connection (or died) */
	KMON_REASON_CONNECT_FAILED, /* the control socket could not be reached or used */
	KMON_REASON_REFUSED,        /* the agent refused: kmon_client__hello_status says why */
	KMON_REASON_PROTOCOL,       /* a reply, descriptor or ring record was not acceptable */
	KMON_REASON_TIMEOUT,        /* the agent did not answer the hello in time */
};

struct kmon_client_opts {
	size_t sz;               /* sizeof(struct kmon_client_opts) */
	const char *socket_path; /* default /run/kmon/kmon.sock */
	const char *name;        /* shown in the agent's logs and metrics */
	uint32_t event_mask;     /* KMON_EV_MASK(...) bits; 0 = all */
	const char *const *namespaces; /* only these pod namespaces; NULL = all */
	unsigned n_namespaces;
	size_t ring_bytes;   /* requested ring size; 0 = agent default */
	size_t replay_bytes; /* history to replay before the live stream; 0 = none */
	bool reconnect;      /* retry with backoff when the agent goes away */
	/* Without namespaces, the library reads the events from the agent's
	 * shared history (one copy for every consumer that takes all events:
	 * much less work for the agent than a copy into each ring), and the
	 * ring carries only the containers' metadata. true: copies of the
	 * events in this consumer's own ring all the same. A consumer that
	 * falls a whole history behind (8 MiB of events by default) loses
	 * the oldest; they are reported through on_lost, counting every event
	 * of the node missed there, of whatever type. Added after the first
	 * release: an opts with a smaller sz leaves it false. */
	bool private_ring;
};

struct kmon_client_cbs {
	/* meta is NULL when the event has no container (container_key 0) or the
	 * key is unknown; replay is true for history records sent before live ones. */
	void (*on_event)(void *ctx, const struct kmon_event *ev, const struct kmon_meta *meta,
			 uint64_t seq, bool replay);
	/* count records this consumer lost, starting at sequence number since_seq. */
	void (*on_lost)(void *ctx, uint64_t count, uint64_t since_seq);
	void (*on_state)(void *ctx, enum kmon_client_state state, const char *why);
	/* A container's metadata arrived or changed (may be NULL). The meta
	 * pointer for a key stays the same; its contents are updated in place. */
	void (*on_meta)(void *ctx, const struct kmon_meta *meta);
};

struct kmon_client_stats {
	uint64_t received;   /* EVENT records decoded */
	uint64_t lost;       /* sum of LOST records */
	uint64_t meta;       /* META records decoded */
	uint64_t reconnects; /* successful attaches after the first */
	uint64_t wakeups;    /* wake-ups taken (the agent rang our wake-up socket) */
	uint64_t replayed;   /* EVENT records that were history replay */
	uint64_t seq_errors; /* sequence gaps no LOST record explained (a bug) */
	uint64_t bad_records; /* malformed records seen (the ring was dropped) */
};

/* Returns NULL and sets errno on failure. */
struct kmon_client *kmon_client__new(uv_loop_t *loop, const struct kmon_client_opts *opts,
				     const struct kmon_client_cbs *cbs, void *ctx);
/* Starts connecting; state changes arrive through cbs->on_state. */
int kmon_client__start(struct kmon_client *c);
/* Detaches and releases everything once the loop has closed its handles;
 * on_closed (may be NULL) is called then. Safe with NULL. */
void kmon_client__close(struct kmon_client *c, void (*on_closed)(void *ctx));
void kmon_client__get_stats(const struct kmon_client *c, struct kmon_client_stats *out);
/* Moves the calling process to SCHED_BATCH: the same CPU share, but its
 * wake-ups never preempt the running task. So a record arriving does not take
 * the CPU from the node's workload or from the agent's drain, and records pile
 * up into bigger batches (several times less consumer CPU per record under a
 * flood). Call before starting threads. Returns 0 or -errno. */
int kmon_client__sched_batch(void);
/* Node name the agent reported in its hello reply ("" until attached). */
const char *kmon_client__node(const struct kmon_client *c);
/* Names a call site of an event. With KMON_EVF_ADDR_OPAQUE (the agent's
 * default) call sites are symbol references, resolved here through the
 * sealed table the agent handed over at attach, locally and at no cost to
 * the agent: buf gets "function+0xoff" or "function+0xoff [module]",
 * NUL-terminated. Returns its length, -ENOENT when the agent could not
 * resolve the site (or no table yet: buf gets ""), -ENOSPC when cut to len.
 * Events carry no address without --raw-kernel-addresses on the agent; then
 * the flag is clear and call sites are plain addresses (nothing to resolve).
 * A reconnect replaces the table: resolve an event before the next loop
 * turn. */
int kmon_client__symbolize(const struct kmon_client *c, uint64_t call_site, char *buf,
			   size_t len);
/* The table itself (for encoders such as event_json__write_sym); NULL
 * before the first attach. Valid until the next reconnect or close. */
const struct kmon_symtab *kmon_client__symtab(const struct kmon_client *c);
/* The code behind the last on_state (KMON_REASON_NONE once attached). */
enum kmon_client_reason kmon_client__reason(const struct kmon_client *c);
/* With KMON_REASON_REFUSED: the agent's status (enum kmon_hello_status in
 * shm/proto.h, e.g. 3 = ring too big, 6 = shm budget); 0 otherwise. */
unsigned kmon_client__hello_status(const struct kmon_client *c);

#endif
