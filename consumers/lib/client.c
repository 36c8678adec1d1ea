// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/lib/client.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "shm/history.h"
#include "shm/meta.h"
#include "shm/proto.h"
#include "shm/ring.h"
#include "shm/symtab.h"

#define BATCH 1024           /* records per loop turn: others get the loop too */
#define HIST_CHUNK 64        /* events copied out of the shared history at once */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define REPLY_TIMEOUT_MS 5000
/* A flood: a run of reading (from a wake-up until caught up) that found at
 * least PACE_MIN_RECORDS records ends in a PACE_MS nap instead of a sleep
 * until the agent's next wake-up. Under a flood the agent would otherwise
 * wake the consumer every few of its batches, and each wake-up is a context
 * switch on both sides: with 4 consumers under a two-thread kmalloc flood
 * on 2 vCPUs, each consumer's CPU per record went from 11.8 to 10.2-10.7 ns
 * (medians of 12 pairs, side by side with the unpaced library). The nap
 * delays records by at most PACE_MS, and only while they arrive at 500k/s
 * or more. Only where PACE_MIN_ROOM records fit (the default history holds
 * 65,536 events, the default 4 MiB ring about 27,000): a flood of 8M
 * events/s would fill that within PACE_MS, while a small ring fills up in
 * a nap at rates its consumer kept up with before. */
#define PACE_MIN_RECORDS 1024
#define PACE_MS 2
#define PACE_MIN_ROOM (16 * PACE_MIN_RECORDS)

struct kmon_client {
	uv_loop_t *loop;
	struct kmon_client_opts o;
	struct kmon_client_cbs cbs;
	void *ctx;
	char socket_path[KMON_PROTO_PATH_MAX];
	char name[KMON_PROTO_NAME_MAX];
	char (*ns)[KMON_PROTO_NS_LEN];
	char node[KMON_PROTO_NODE_MAX];

	int sock;
	int fds[KMON_PROTO_FDS]; /* data, ctl, wake-up socket, symbol table from the agent */
	struct kmon_symtab *symtab; /* the agent's kernel symbol names (kept until the next offer) */
	bool offered;   /* ring received and mapped, ready sent */
	bool give_up;   /* the last failure will not go away by retrying */
	struct ring_cons *ring;
	uv_poll_t sock_poll;
	uv_poll_t efd_poll;
	uv_idle_t idle;
	uv_timer_t timer; /* reply timeout, then reconnect backoff */
	uv_timer_t pace;  /* the nap after a flood's run (PACE_MS) */
	uint64_t run_records; /* looked at since the run began */
	size_t ring_bytes;    /* of the mapped ring */
	bool sock_poll_on, efd_poll_on, idle_on;
	bool attached, closing, ever_attached;
	unsigned backoff_ms;
	/* Handles initialised on the loop whose close callback has not run yet:
	 * libuv still links every one of them (they live inside this struct), so
	 * the struct is freed only when this reaches 0 after kmon_client__close. */
	int open_handles;
	void (*on_closed)(void *ctx);

	/* The shared history, when the agent granted it (KMON_REPLY_F_SHARED):
	 * from the JOIN record in the ring on (hist_on), events are read there,
	 * from hist_pos; those below hist_live are replay. hist_lost: events
	 * found overwritten there. Both are reported to the agent through the
	 * ring's notes (KMON_HIST_NOTE_*). */
	struct hist_cons *hist;
	int hist_fd; /* until mapped */
	bool hist_on;
	uint64_t hist_pos, hist_live, hist_lost;
	struct kmon_event *hbuf; /* HIST_CHUNK events */

	struct kmon_meta **meta;
	uint64_t next_seq;
	bool seq_known;
	struct kmon_client_stats st;
	enum kmon_client_reason reason;
	unsigned hello_status;
};

/* The agent shares its history only with a consumer that takes every
 * namespace (it would see other namespaces' events there). */
static bool asked_shared(const struct kmon_client *c)
{
	return !c->o.private_ring && !c->o.n_namespaces;
}

static void set_state(struct kmon_client *c, enum kmon_client_state s, const char *why)
{
	if (c->cbs.on_state)
		c->cbs.on_state(c->ctx, s, why);
}

struct kmon_client *kmon_client__new(uv_loop_t *loop, const struct kmon_client_opts *opts,
				     const struct kmon_client_cbs *cbs, void *ctx)
{
	struct kmon_client *c;
	unsigned i;

	if (!opts || opts->sz < offsetof(struct kmon_client_opts, private_ring) || !cbs || !loop ||
	    opts->n_namespaces > KMON_PROTO_NS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = loop;
	memcpy(&c->o, opts, opts->sz < sizeof(c->o) ? opts->sz : sizeof(c->o));
	c->o.sz = sizeof(c->o);
	c->cbs = *cbs;
	c->ctx = ctx;
	c->sock = -1;
	c->hist_fd = -1;
	for (i = 0; i < KMON_PROTO_FDS; i++)
		c->fds[i] = -1;
	snprintf(c->socket_path, sizeof(c->socket_path), "%s",
		 opts->socket_path ? opts->socket_path : "/run/kmon/kmon.sock");
	snprintf(c->name, sizeof(c->name), "%s", opts->name ? opts->name : "consumer");
	c->meta = calloc(KMON_CONTAINER_KEYS, sizeof(*c->meta));
	c->hbuf = calloc(HIST_CHUNK, sizeof(*c->hbuf));
	if (opts->n_namespaces)
		c->ns = calloc(opts->n_namespaces, sizeof(*c->ns));
	if (!c->meta || !c->hbuf || (opts->n_namespaces && !c->ns)) {
		free(c->meta);
		free(c->hbuf);
		free(c->ns);
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < opts->n_namespaces; i++)
		snprintf(c->ns[i], KMON_PROTO_NS_LEN, "%s", opts->namespaces[i]);
	c->backoff_ms = BACKOFF_MIN_MS;
	uv_idle_init(loop, &c->idle);
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->pace);
	c->idle.data = c;
	c->timer.data = c;
	c->pace.data = c;
	c->open_handles = 3;
	return c;
}

static void free_client(struct kmon_client *c)
{
	if (c->on_closed)
		c->on_closed(c->ctx);
	for (unsigned i = 0; i < KMON_CONTAINER_KEYS; i++)
		free(c->meta[i]);
	free(c->meta);
	free(c->hbuf);
	free(c->ns);
	kmon_symtab__free(c->symtab);
	free(c);
}

/* Every embedded handle closes through here. libuv runs close callbacks in
 * the reverse order of the uv_close calls and touches each handle after its
 * own callback, so the first callback to run cannot free the struct: the
 * last one does. */
static void handle_closed(uv_handle_t *h)
{
	struct kmon_client *c = h->data;

	if (--c->open_handles == 0 && c->closing)
		free_client(c);
}

static void stop_poll(uv_poll_t *p, bool *on)
{
	if (*on) {
		uv_close((uv_handle_t *)p, handle_closed);
		*on = false;
	}
}

static int start_poll(struct kmon_client *c, uv_poll_t *p, int fd, int events, uv_poll_cb cb)
{
	int r = uv_poll_init(c->loop, p, fd);

	if (r)
		return r;
	c->open_handles++;
	p->data = c;
	r = uv_poll_start(p, events, cb);
	if (r)
		uv_close((uv_handle_t *)p, handle_closed);
	return r;
}

static void detach(struct kmon_client *c)
{
	stop_poll(&c->sock_poll, &c->sock_poll_on);
	stop_poll(&c->efd_poll, &c->efd_poll_on);
	if (c->idle_on) {
		uv_idle_stop(&c->idle);
		c->idle_on = false;
	}
	uv_timer_stop(&c->pace);
	c->run_records = 0;
	ring_cons__free(c->ring);
	c->ring = NULL;
	hist_cons__free(c->hist);
	c->hist = NULL;
	c->hist_on = false;
	if (c->hist_fd >= 0)
		close(c->hist_fd);
	c->hist_fd = -1;
	for (int i = 0; i < KMON_PROTO_FDS; i++) {
		if (c->fds[i] >= 0)
			close(c->fds[i]);
		c->fds[i] = -1;
	}
	/* The poll handles close on the next loop turn; the socket goes with
	 * the libuv watcher gone, so it is safe to close now. */
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
	c->attached = false;
	c->offered = false;
}

static void connect_now(struct kmon_client *c);
static void retry_later(struct kmon_client *c, const char *why);

static void on_timer(uv_timer_t *t)
{
	struct kmon_client *c = t->data;

	if (c->closing)
		return;
	if (c->sock >= 0 && !c->attached) {
		c->reason = KMON_REASON_TIMEOUT;
		retry_later(c, "the agent did not answer the hello in time");
		return;
	}
	connect_now(c);
}

static void retry_later(struct kmon_client *c, const char *why)
{
	unsigned jitter;

	detach(c);
	if (!c->o.reconnect) {
		set_state(c, KMON_CLIENT_REFUSED, why);
		return;
	}
	set_state(c, KMON_CLIENT_DISCONNECTED, why);
	jitter = (unsigned)rand() % (c->backoff_ms / 2 + 1);
	uv_timer_start(&c->timer, on_timer, c->backoff_ms + jitter, 0);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* Inlined into the history's loop, where it runs for every event. */
static inline __attribute__((always_inline)) void take_event(struct kmon_client *c,
							     const struct kmon_event *ev,
							     uint64_t seq, bool replay)
{
	const struct kmon_meta *m = NULL;

	if (ev->container_key && ev->container_key < KMON_CONTAINER_KEYS)
		m = c->meta[ev->container_key];
	c->st.received++;
	if (replay)
		c->st.replayed++;
	if (c->cbs.on_event)
		c->cbs.on_event(c->ctx, ev, m, seq, replay);
}

static void take_lost(struct kmon_client *c, uint64_t count, uint64_t since)
{
	if (c->seq_known && since != c->next_seq)
		c->st.seq_errors++;
	c->next_seq = since + count;
	c->seq_known = true;
	c->st.lost += count;
	if (c->cbs.on_lost)
		c->cbs.on_lost(c->ctx, count, since);
}

/* One record of the ring; false when it breaks the protocol. */
static bool handle_record(struct kmon_client *c, const struct kmon_rec_hdr *h)
{
	const uint8_t *p = (const uint8_t *)(h + 1);
	size_t plen = h->len - sizeof(*h);

	switch (h->type) {
	case KMON_REC_EVENT: {
		const struct kmon_event *ev = (const struct kmon_event *)p;
		if (plen < sizeof(*ev))
			break;
		if (c->hist_on)
			return false; /* its events are in the history now */
		if (c->seq_known && h->seq != c->next_seq)
			c->st.seq_errors++;
		c->next_seq = h->seq + 1;
		c->seq_known = true;
		take_event(c, ev, h->seq, h->flags & KMON_RECF_REPLAY);
		break;
	}
	case KMON_REC_META: {
		struct kmon_meta m;
		if (plen < sizeof(m))
			break;
		memcpy(&m, p, sizeof(m));
		/* Once the events come from the history, the library numbers them
		 * and the agent's numbers on META records mean nothing here. */
		if (!c->hist_on) {
			if (c->seq_known && h->seq != c->next_seq)
				c->st.seq_errors++;
			c->next_seq = h->seq + 1;
			c->seq_known = true;
		}
		if (!m.key || m.key >= KMON_CONTAINER_KEYS)
			break;
		/* Strings from the agent are fixed fields: terminate them anyway. */
		m.runtime[sizeof(m.runtime) - 1] = m.container_id[sizeof(m.container_id) - 1] = '\0';
		m.pod_uid[sizeof(m.pod_uid) - 1] = m.pod[sizeof(m.pod) - 1] = '\0';
		m.namespace[sizeof(m.namespace) - 1] = m.container[sizeof(m.container) - 1] = '\0';
		if (!c->meta[m.key]) {
			c->meta[m.key] = malloc(sizeof(m));
			if (!c->meta[m.key])
				break;
		}
		*c->meta[m.key] = m;
		c->st.meta++;
		if (c->cbs.on_meta)
			c->cbs.on_meta(c->ctx, c->meta[m.key]);
		break;
	}
	case KMON_REC_LOST: {
		struct kmon_rec_lost l;
		if (plen < sizeof(l))
			break;
		memcpy(&l, p, sizeof(l));
		take_lost(c, l.count, l.since_seq);
		break;
	}
	case KMON_REC_JOIN: {
		struct kmon_rec_join j;
		if (plen < sizeof(j) || !c->hist || c->hist_on)
			return false;
		memcpy(&j, p, sizeof(j));
		if (c->seq_known && h->seq != c->next_seq)
			c->st.seq_errors++;
		c->next_seq = h->seq;
		c->seq_known = true;
		c->hist_on = true;
		c->hist_pos = j.from;
		c->hist_live = j.live_from;
		ring_cons__set_note(c->ring, KMON_HIST_NOTE_POS, c->hist_pos);
		break;
	}
	default:
		break;
	}
	return true;
}

/* Events [hist_pos, pub) of the shared history, at most budget looked at;
 * true when more may be waiting. Events of types this consumer did not ask
 * for are skipped here (the agent filters only its copies). */
static bool read_history(struct kmon_client *c, uint64_t pub, unsigned budget)
{
	uint32_t mask = c->o.event_mask ? c->o.event_mask : KMON_EV_MASK_ALL;
	unsigned looked = 0;

	while (c->hist_pos < pub && looked < budget) {
		uint64_t lost = 0, from = c->hist_pos, first;
		unsigned k, i, want = budget - looked < HIST_CHUNK ? budget - looked : HIST_CHUNK;

		k = hist_cons__read(c->hist, &c->hist_pos, pub, c->hbuf, want, &lost);
		looked += (unsigned)(c->hist_pos - from < want ? c->hist_pos - from : want);
		first = c->hist_pos - k; /* the good ones are the last k looked at */
		c->hist_lost += lost;
		ring_cons__set_note(c->ring, KMON_HIST_NOTE_LOST, c->hist_lost);
		ring_cons__set_note(c->ring, KMON_HIST_NOTE_POS, c->hist_pos);
		if (lost)
			take_lost(c, lost, c->next_seq);
		/* A callback may close the client: the history is gone then. */
		for (i = 0; i < k && c->hist_on; i++) {
			const struct kmon_event *ev = &c->hbuf[i];

			/* An impostor's type may be any number: no shift past 31. */
			if (ev->event_type > 31 || !(mask & KMON_EV_MASK(ev->event_type)))
				continue;
			take_event(c, ev, c->next_seq++, first + i < c->hist_live);
		}
		if (!c->hist_on)
			return false;
	}
	return c->hist_pos < pub;
}

/* Reads up to BATCH records. Returns true when more may be waiting. With the
 * history: its published count first, then the ring, so that every event
 * below that count has its META in hand (shm/history.h); and history events
 * only once the ring is empty. */
static bool read_batch(struct kmon_client *c)
{
	const struct kmon_rec_hdr *h = NULL;
	bool hist_on = c->hist_on, bad = false, more;
	uint64_t pub = hist_on ? hist_cons__published(c->hist) : 0, pos;
	int n = 0;

	while (n < BATCH && c->ring && (h = ring_cons__peek(c->ring, &bad))) {
		if (!handle_record(c, h)) {
			bad = true;
			break;
		}
		ring_cons__advance(c->ring, h);
		n++;
	}
	if (c->ring)
		ring_cons__release(c->ring);
	if (bad) {
		c->st.bad_records++;
		c->reason = KMON_REASON_PROTOCOL;
		retry_later(c, "the agent's ring holds a malformed record");
		return false;
	}
	if (!c->ring)
		return false;
	c->run_records += (unsigned)n;
	if (h || c->hist_on != hist_on)
		return true; /* the ring is not empty, or the JOIN just came */
	if (!hist_on)
		return false;
	pos = c->hist_pos;
	more = read_history(c, pub, (unsigned)(BATCH - n));
	c->run_records += c->hist_pos - pos;
	return more;
}

/* Nothing more in the history either since the sleep was announced. */
static bool history_idle(struct kmon_client *c)
{
	return !c->hist_on || hist_cons__published(c->hist) <= c->hist_pos;
}

static void kick(struct kmon_client *c);

/* Events the consumer can fall behind by without losing any. */
static bool room_for_a_nap(const struct kmon_client *c)
{
	size_t room = c->hist_on ? hist_cons__cap(c->hist)
				 : c->ring_bytes / kmon_rec_size(sizeof(struct kmon_event));

	return room >= PACE_MIN_ROOM;
}

static void on_pace(uv_timer_t *t)
{
	kick(t->data);
}

static void on_idle(uv_idle_t *h)
{
	struct kmon_client *c = h->data;

	if (!c->ring) {
		uv_idle_stop(h);
		c->idle_on = false;
		return;
	}
	if (read_batch(c))
		return;
	if (!c->ring)
		return;
	if (c->run_records >= PACE_MIN_RECORDS && room_for_a_nap(c)) {
		c->run_records = 0;
		uv_idle_stop(h);
		c->idle_on = false;
		uv_timer_start(&c->pace, on_pace, PACE_MS, 0);
		return;
	}
	c->run_records = 0;
	/* The history's count after announcing sleep: the agent publishes it,
	 * then checks the wait word (ring_prod__wake()). */
	if (ring_cons__prepare_sleep(c->ring) && history_idle(c)) {
		uv_idle_stop(h);
		c->idle_on = false;
	} else {
		ring_cons__wake(c->ring);
	}
}

static void kick(struct kmon_client *c)
{
	uv_timer_stop(&c->pace);
	if (c->ring && !c->idle_on) {
		ring_cons__wake(c->ring);
		uv_idle_start(&c->idle, on_idle);
		c->idle_on = true;
	}
}

static void on_efd(uv_poll_t *p, int status, int events)
{
	struct kmon_client *c = p->data;

	(void)status;
	(void)events;
	c->st.wakeups++;
	kick(c);
}

static void on_sock(uv_poll_t *p, int status, int events);

/* The offer: the agent's first reply, with the ring's descriptors. Checks
 * them before mapping (an impostor on the socket path may send anything),
 * maps them with every page populated and says ready. */
static void take_offer(struct kmon_client *c, const struct kmon_hello_reply *r, unsigned nfds,
		       char *why, size_t whylen)
{
	struct kmon_ready rd = { .magic = KMON_PROTO_MAGIC, .version = KMON_PROTO_VERSION };
	char err[200];

	struct kmon_symtab *st;

	if (nfds != KMON_PROTO_FDS) {
		snprintf(why, whylen, "the agent's reply carried %u descriptors, not %u", nfds,
			 KMON_PROTO_FDS);
		return;
	}
	/* Hostile input like the ring: checked whole before any name is used. */
	st = kmon_symtab__open(c->fds[3], err, sizeof(err));
	if (!st) {
		snprintf(why, whylen, "%s sent a bad symbol table: %s", c->socket_path, err);
		return;
	}
	/* Mapped: the descriptor is not needed any more. */
	close(c->fds[3]);
	c->fds[3] = -1;
	kmon_symtab__free(c->symtab);
	c->symtab = st;
	c->ring = ring_cons__map(c->fds[0], c->fds[1], c->fds[2], r->ring_bytes, err, sizeof(err));
	c->ring_bytes = r->ring_bytes;
	if (!c->ring) {
		snprintf(why, whylen, "%s sent descriptors that are not a kmon ring: %s",
			 c->socket_path, err);
		return;
	}
	if (send(c->sock, &rd, sizeof(rd), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(rd)) {
		c->reason = KMON_REASON_CONNECT_FAILED;
		snprintf(why, whylen, "cannot send the ready: %s", strerror(errno));
		return;
	}
	c->offered = true;
}

/* Returns false when nothing arrived yet; else true, with why empty once
 * attached, or saying what went wrong (c->give_up: retrying will not help). */
static bool recv_reply(struct kmon_client *c, char *why, size_t whylen)
{
	struct kmon_hello_reply r;
	int fds[KMON_PROTO_FDS];
	unsigned nfds = 0, i;
	uint32_t step = c->offered ? KMON_STEP_ATTACHED : KMON_STEP_OFFER;
	long n;
	char err[200];

	why[0] = '\0';
	c->give_up = false;
	memset(&r, 0, sizeof(r));
	n = kmon_proto_recv(c->sock, &r, sizeof(r), fds, &nfds, MSG_DONTWAIT);
	if (n == -EAGAIN)
		return false;
	/* The offer's descriptors, and the history's with the ATTACHED step;
	 * any others are not kept. */
	for (i = 0; i < nfds; i++) {
		if (step == KMON_STEP_OFFER && c->fds[i] < 0)
			c->fds[i] = fds[i];
		else if (step == KMON_STEP_ATTACHED && i == 0 && c->hist_fd < 0)
			c->hist_fd = fds[i];
		else
			close(fds[i]);
	}
	/* Protocol trouble unless a branch below says otherwise. */
	c->reason = KMON_REASON_PROTOCOL;
	if (n <= 0) {
		c->reason = KMON_REASON_AGENT_GONE;
		snprintf(why, whylen, "the agent closed the connection during the hello");
		return true;
	}
	if (kmon_hello_reply_check(&r, (size_t)n, why, whylen))
		return true;
	if (r.status != KMON_HELLO_OK) {
		snprintf(why, whylen, "the agent refused the hello (%s): %s",
			 kmon_hello_status_name(r.status), r.error);
		c->give_up = !kmon_hello_status_retryable(r.status);
		c->reason = KMON_REASON_REFUSED;
		c->hello_status = r.status;
		return true;
	}
	if (r.step != step) {
		snprintf(why, whylen, "the agent's reply is step %u, expected %u", r.step, step);
		return true;
	}
	if (step == KMON_STEP_OFFER) {
		take_offer(c, &r, nfds, why, whylen);
		return why[0] != '\0';
	}
	if (ring_cons__start(c->ring)) {
		snprintf(why, whylen, "the agent's ring has a bad header");
		return true;
	}
	if (r.flags & KMON_REPLY_F_SHARED) {
		/* Hostile input like the ring: checked whole before it is mapped. */
		if (!asked_shared(c) || nfds != 1) {
			snprintf(why, whylen, "the agent granted the shared history %s",
				 asked_shared(c) ? "without its descriptor" : "unasked");
		} else {
			c->hist = hist_cons__map(c->hist_fd, err, sizeof(err));
			if (!c->hist)
				snprintf(why, whylen, "%s sent a bad history: %s", c->socket_path, err);
		}
	}
	if (why[0])
		return true;
	if (c->hist_fd >= 0) {
		close(c->hist_fd); /* mapped: not needed any more */
		c->hist_fd = -1;
	}
	snprintf(c->node, sizeof(c->node), "%s", r.node);
	return true;
}

static void on_sock(uv_poll_t *p, int status, int events)
{
	struct kmon_client *c = p->data;
	char why[512];

	(void)status;
	if (c->closing)
		return;
	if (!c->attached) {
		if (!recv_reply(c, why, sizeof(why)))
			return;
		uv_timer_stop(&c->timer);
		if (why[0]) {
			/* A refusal that will come again: say so and stop. Budget and
			 * limits may free up: retry those with backoff. */
			if (c->give_up || !c->o.reconnect) {
				detach(c);
				set_state(c, KMON_CLIENT_REFUSED, why);
			} else {
				retry_later(c, why);
			}
			return;
		}
		c->attached = true;
		c->reason = KMON_REASON_NONE;
		c->hello_status = 0;
		if (c->ever_attached)
			c->st.reconnects++;
		c->ever_attached = true;
		c->backoff_ms = BACKOFF_MIN_MS;
		c->seq_known = false;
		if (start_poll(c, &c->efd_poll, c->fds[2], UV_READABLE, on_efd) == 0)
			c->efd_poll_on = true;
		snprintf(why, sizeof(why), "attached to %s (node %s)", c->socket_path,
			 c->node[0] ? c->node : "-");
		set_state(c, KMON_CLIENT_ATTACHED, why);
		kick(c);
		return;
	}
	if (events & (UV_DISCONNECT | UV_READABLE)) {
		char b[8];
		ssize_t n = recv(c->sock, b, sizeof(b), MSG_DONTWAIT);
		if (n > 0 || (n < 0 && errno == EAGAIN))
			return;
		/* The agent is gone: what it wrote before going is still ours. */
		while (c->ring && read_batch(c))
			;
		c->reason = KMON_REASON_AGENT_GONE;
		retry_later(c, "the agent closed the connection");
	}
}

static void connect_now(struct kmon_client *c)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct kmon_hello h;
	char why[300];
	unsigned i;

	c->reason = KMON_REASON_CONNECT_FAILED; /* until the hello is answered */
	c->hello_status = 0;
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		retry_later(c, why);
		return;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", c->socket_path);
	if (connect(c->sock, (struct sockaddr *)&a, sizeof(a)) < 0) {
		snprintf(why, sizeof(why), "cannot connect to %s: %s%s", c->socket_path,
			 strerror(errno),
			 errno == EACCES ? " (is this user in the socket's group?)" : "");
		retry_later(c, why);
		return;
	}
	memset(&h, 0, sizeof(h));
	h.magic = KMON_PROTO_MAGIC;
	h.version = KMON_PROTO_VERSION;
	h.event_mask = c->o.event_mask;
	h.flags = asked_shared(c) ? KMON_HELLO_F_SHARED : 0;
	h.ring_bytes = c->o.ring_bytes;
	h.replay_bytes = c->ever_attached ? 0 : c->o.replay_bytes;
	snprintf(h.name, sizeof(h.name), "%s", c->name);
	h.n_namespaces = (uint16_t)c->o.n_namespaces;
	for (i = 0; i < c->o.n_namespaces; i++)
		memcpy(h.namespaces[i], c->ns[i], KMON_PROTO_NS_LEN);
	if (send(c->sock, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h)) {
		snprintf(why, sizeof(why), "cannot send the hello: %s", strerror(errno));
		retry_later(c, why);
		return;
	}
	if (start_poll(c, &c->sock_poll, c->sock, UV_READABLE | UV_DISCONNECT, on_sock)) {
		retry_later(c, "cannot watch the control socket");
		return;
	}
	c->sock_poll_on = true;
	uv_timer_start(&c->timer, on_timer, REPLY_TIMEOUT_MS, 0);
}

int kmon_client__start(struct kmon_client *c)
{
	set_state(c, KMON_CLIENT_CONNECTING, c->socket_path);
	connect_now(c);
	return 0;
}

void kmon_client__close(struct kmon_client *c, void (*on_closed)(void *ctx))
{
	if (!c || c->closing)
		return;
	c->closing = true;
	c->on_closed = on_closed;
	/* Whatever is already in the ring is delivered before closing. */
	while (c->ring && read_batch(c))
		;
	/* detach() closes the poll handles; their callbacks count down too. */
	detach(c);
	uv_close((uv_handle_t *)&c->idle, handle_closed);
	uv_close((uv_handle_t *)&c->timer, handle_closed);
	uv_close((uv_handle_t *)&c->pace, handle_closed);
}

void kmon_client__get_stats(const struct kmon_client *c, struct kmon_client_stats *out)
{
	*out = c->st;
}

const char *kmon_client__node(const struct kmon_client *c)
{
	return c->node;
}

int kmon_client__symbolize(const struct kmon_client *c, uint64_t call_site, char *buf, size_t len)
{
	return kmon_symtab__symbolize(c ? c->symtab : NULL, call_site, buf, len);
}

const struct kmon_symtab *kmon_client__symtab(const struct kmon_client *c)
{
	return c ? c->symtab : NULL;
}

int kmon_client__sched_batch(void)
{
	struct sched_param sp = { .sched_priority = 0 };

	return sched_setscheduler(0, SCHED_BATCH, &sp) ? -errno : 0;
}

enum kmon_client_reason kmon_client__reason(const struct kmon_client *c)
{
	return c->reason;
}

unsigned kmon_client__hello_status(const struct kmon_client *c)
{
	return c->hello_status;
}
