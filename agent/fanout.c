// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/fanout.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "shm/history.h"
#include "shm/meta.h"
#include "shm/ring.h"

#define BITMAP_BYTES (KMON_CONTAINER_KEYS / 8)
#define EVENT_REC_BYTES kmon_rec_size(sizeof(struct kmon_event))
#define META_REC_BYTES kmon_rec_size(sizeof(struct kmon_meta))
#define LOST_REC_BYTES kmon_rec_size(sizeof(struct kmon_rec_lost))
#define JOIN_REC_BYTES kmon_rec_size(sizeof(struct kmon_rec_join))

struct consumer {
	uint32_t id;
	char name[KMON_PROTO_NAME_MAX];
	uid_t uid;
	pid_t pid;
	struct ring_prod *ring;
	size_t ring_bytes;
	uint32_t event_mask;
	unsigned n_ns;
	char (*ns)[KMON_PROTO_NS_LEN];
	uint8_t *allowed;      /* by key; only with a namespace filter */
	uint8_t *meta_pending; /* by key: META to write before the next event */
	uint64_t seq;
	/* Reads its events from the shared history (shm/history.h) once the
	 * drain has written its JOIN record (at the link): its ring carries
	 * only META and the JOIN. join_from: the first history event it reads
	 * (where its replay starts). */
	bool shared;
	uint64_t join_from;
	/* Set up by the attach, then the drain's: until the drain has seen the
	 * consumer once (linked), the replay still has to catch up with the
	 * history events published since the attach's last pass. */
	bool linked;
	struct replay {
		bool on;
		bool begun;   /* something was replayed */
		uint64_t pos; /* next history event to look at */
	} rp;
	uint64_t lost_pending, lost_since;
	uint64_t produced, delivered, lost;
	uint64_t replayed; /* shared: replay events it reads from the history */
	double fill;
	bool dirty;
	bool bad; /* skipped; waits for the control thread to detach it */
};

/* The consumers the drain writes to: an immutable array, replaced whole by
 * attach and detach (copy, then one atomic store), so that linking or
 * unlinking a consumer never takes the lock the drain holds for a batch.
 * c[0, n) is every consumer; after it, the same ones split: those that get
 * copies (priv), then those that read the shared history (shared). */
struct cons_set {
	unsigned n, n_priv, n_shared;
	struct consumer **priv, **shared;
	struct consumer *c[];
};

struct fanout {
	struct fanout_opts o;
	/* lock: the drain holds it for a batch; the dictionary (set_meta,
	 * forget_meta) and statistics take it briefly. ctl: serializes the
	 * threads that change or read the consumer list (cons, n_cons, live);
	 * the drain never takes it. Order: ctl, then lock. */
	pthread_mutex_t lock;
	pthread_mutex_t ctl;
	bool batch_locked; /* drain thread only */
	struct consumer **cons;
	unsigned n_cons;
	struct cons_set *_Atomic live; /* what the next batch will use */
	struct cons_set *cur;          /* drain thread: this batch's */
	/* Odd while the drain is in a batch: the control thread waits until a
	 * batch that may still use a replaced set is over before freeing it. */
	_Atomic uint64_t drain_seq;
	uint32_t next_id;
	struct kmon_meta **meta; /* by key */
	/* History: the last hist_cap events (NULL: none kept). Only the drain
	 * thread writes it. An attach copies from it without the lock,
	 * seqlock-style (shm/history.h), and shared consumers read their
	 * events from it: neither ever holds up the drain. */
	struct hist_prod *hist;
	size_t hist_cap;
	/* Shared consumers cost the drain nothing per event and consumer:
	 * the batch's events are counted by type once (what each was offered
	 * is added up at the batch's end), and shared_meta has a key's bit set
	 * while some shared consumer may still need its META (set under the
	 * lock with theirs; cleared by the drain once none does). */
	uint64_t batch_types[KMON_EV_TYPE_MAX + 1]; /* drain thread */
	uint8_t *shared_meta;
};

static inline bool bit_get(const uint8_t *b, uint32_t k)
{
	return b[k >> 3] & (1u << (k & 7));
}

static inline void bit_set(uint8_t *b, uint32_t k, bool v)
{
	if (v)
		b[k >> 3] |= (uint8_t)(1u << (k & 7));
	else
		b[k >> 3] &= (uint8_t)~(1u << (k & 7));
}

struct fanout *fanout__new(const struct fanout_opts *opts)
{
	struct fanout *fo = calloc(1, sizeof(*fo));

	if (!fo)
		return NULL;
	fo->o = *opts;
	if (!fo->o.max_consumers)
		fo->o.max_consumers = 16;
	if (!fo->o.default_ring_bytes)
		fo->o.default_ring_bytes = 4u << 20;
	if (!fo->o.max_ring_bytes)
		fo->o.max_ring_bytes = 64u << 20;
	fo->next_id = 1;
	fo->cons = calloc(fo->o.max_consumers, sizeof(*fo->cons));
	atomic_init(&fo->live, calloc(1, sizeof(struct cons_set)));
	fo->meta = calloc(KMON_CONTAINER_KEYS, sizeof(*fo->meta));
	fo->shared_meta = calloc(1, BITMAP_BYTES);
	fo->hist_cap = fo->o.history_bytes / sizeof(struct kmon_event);
	/* A memfd of its own, not malloc's: shared consumers map it, and a
	 * large block in the main heap would neither go back to the system
	 * with the agent's other frees nor show in smaps as what it is (the
	 * memory report names it). */
	if (fo->hist_cap)
		fo->hist = hist_prod__new(fo->hist_cap, "fanout");
	if (!fo->cons || !fo->meta || !fo->shared_meta || (fo->hist_cap && !fo->hist) ||
	    !atomic_load(&fo->live) || pthread_mutex_init(&fo->lock, NULL))
		goto fail;
	if (pthread_mutex_init(&fo->ctl, NULL)) {
		pthread_mutex_destroy(&fo->lock);
		goto fail;
	}
	return fo;
fail:
	free(atomic_load(&fo->live));
	free(fo->cons);
	free(fo->meta);
	free(fo->shared_meta);
	hist_prod__free(fo->hist);
	free(fo);
	errno = ENOMEM;
	return NULL;
}

static void consumer_free(struct consumer *c)
{
	if (!c)
		return;
	ring_prod__free(c->ring);
	free(c->ns);
	free(c->allowed);
	free(c->meta_pending);
	free(c);
}

void fanout__free(struct fanout *fo)
{
	unsigned i;

	if (!fo)
		return;
	for (i = 0; i < fo->n_cons; i++)
		consumer_free(fo->cons[i]);
	for (i = 0; i < KMON_CONTAINER_KEYS; i++)
		free(fo->meta[i]);
	pthread_mutex_destroy(&fo->lock);
	pthread_mutex_destroy(&fo->ctl);
	free(atomic_load(&fo->live));
	free(fo->cons);
	free(fo->meta);
	free(fo->shared_meta);
	hist_prod__free(fo->hist);
	free(fo);
}

static bool ns_allowed(const struct consumer *c, const struct kmon_meta *m)
{
	unsigned i;

	if (!m)
		return false;
	for (i = 0; i < c->n_ns; i++)
		if (!strcmp(c->ns[i], m->namespace))
			return true;
	return false;
}

static void mark_bad(struct fanout *fo, struct consumer *c)
{
	if (c->bad)
		return;
	c->bad = true;
	if (fo->o.on_bad)
		fo->o.on_bad(fo->o.ctx);
}

static void *reserve(struct fanout *fo, struct consumer *c, uint16_t type, uint16_t flags,
		     uint32_t len, uint64_t seq)
{
	bool bad;
	struct kmon_rec_hdr *h = ring_prod__reserve(c->ring, len, &bad);

	if (bad) {
		mark_bad(fo, c);
		return NULL;
	}
	if (!h)
		return NULL;
	h->type = type;
	h->flags = flags;
	h->seq = seq;
	return h;
}

static bool write_lost(struct fanout *fo, struct consumer *c)
{
	struct kmon_rec_hdr *h;
	struct kmon_rec_lost *l;

	h = reserve(fo, c, KMON_REC_LOST, 0, LOST_REC_BYTES, c->lost_since);
	if (!h)
		return false;
	l = (struct kmon_rec_lost *)(h + 1);
	l->count = c->lost_pending;
	l->since_seq = c->lost_since;
	ring_prod__commit(c->ring, h);
	c->lost_pending = 0;
	c->dirty = true;
	return true;
}

/* A shared consumer's switch to the history, at its link: its replay is
 * history events [join_from, live_from), live events follow. */
static bool write_join(struct fanout *fo, struct consumer *c, uint64_t live_from)
{
	struct kmon_rec_hdr *h = reserve(fo, c, KMON_REC_JOIN, 0, JOIN_REC_BYTES, c->seq);
	struct kmon_rec_join *j;

	if (!h)
		return false;
	j = (struct kmon_rec_join *)(h + 1);
	j->from = c->join_from < live_from ? c->join_from : live_from;
	j->live_from = live_from;
	ring_prod__commit(c->ring, h);
	c->dirty = true;
	return true;
}

static bool write_meta(struct fanout *fo, struct consumer *c, const struct kmon_meta *m)
{
	struct kmon_rec_hdr *h = reserve(fo, c, KMON_REC_META, 0, META_REC_BYTES, c->seq);

	if (!h)
		return false;
	memcpy(h + 1, m, sizeof(*m));
	ring_prod__commit(c->ring, h);
	c->seq++;
	c->dirty = true;
	return true;
}

/* One event into one consumer's ring: the pending LOST report and the
 * container's META go first, so the consumer never sees an event it cannot
 * place. Never blocks: no room means this event is lost for this consumer.
 *
 * All of it is written only if it fits with HEADROOM to spare (a bound that
 * includes worst-case PAD records). So after any write a LOST record still
 * fits, and the final LOST report at shutdown can always be delivered. */
#define HEADROOM (2 * LOST_REC_BYTES)
/* The container's META, if the agent knows it, before c's next event of it;
 * false when the ring took no META (it stays pending). */
static bool meta_first(struct fanout *fo, struct consumer *c, uint32_t key)
{
	if (fo->meta[key] && !write_meta(fo, c, fo->meta[key]))
		return false;
	bit_set(c->meta_pending, key, false);
	return true;
}

static void lose(struct consumer *c, uint64_t n)
{
	if (!c->lost_pending)
		c->lost_since = c->seq;
	c->lost_pending += n;
	c->seq += n;
	c->lost += n;
}

static void deliver(struct fanout *fo, struct consumer *c, const struct kmon_event *ev,
		    uint16_t flags)
{
	uint32_t key = ev->container_key;
	struct kmon_rec_hdr *h;
	bool want_meta = key && key < KMON_CONTAINER_KEYS && bit_get(c->meta_pending, key);
	size_t need = 2 * EVENT_REC_BYTES + HEADROOM;
	bool bad;

	c->produced++;
	if (c->lost_pending)
		need += 2 * LOST_REC_BYTES;
	if (want_meta)
		need += 2 * META_REC_BYTES;
	if (!ring_prod__room(c->ring, need, &bad)) {
		if (bad)
			mark_bad(fo, c);
		goto lost;
	}
	if (c->lost_pending && !write_lost(fo, c))
		goto lost;
	if (want_meta && !meta_first(fo, c, key))
		goto lost;
	h = reserve(fo, c, KMON_REC_EVENT, flags, EVENT_REC_BYTES, c->seq);
	if (!h)
		goto lost;
	memcpy(h + 1, ev, sizeof(*ev));
	ring_prod__commit(c->ring, h);
	c->seq++;
	c->delivered++;
	c->dirty = true;
	return;
lost:
	lose(c, 1);
}

/* A shared consumer reads the event itself from the history: what is left to
 * the drain is the container's META, in its ring before the batch's
 * history is published (fanout__flush()). A META that does not fit stays
 * pending for the container's next event; meanwhile the consumer places the
 * event as it would one whose container the agent does not know yet. */
static void shared_meta_first(struct fanout *fo, struct consumer *c, uint32_t key)
{
	bool bad;

	if (fo->meta[key] && !ring_prod__room(c->ring, 2 * META_REC_BYTES + HEADROOM, &bad)) {
		if (bad)
			mark_bad(fo, c);
		return;
	}
	(void)meta_first(fo, c, key);
}

/* One replayed event (the live ones: fanout__publish()). */
static void deliver_shared(struct fanout *fo, struct consumer *c, const struct kmon_event *ev)
{
	uint32_t key = ev->container_key;

	c->produced++;
	if (key && key < KMON_CONTAINER_KEYS && bit_get(c->meta_pending, key))
		shared_meta_first(fo, c, key);
}

static inline bool wants(const struct fanout *fo, const struct consumer *c,
			 const struct kmon_event *ev)
{
	uint32_t key = ev->container_key;

	if (c->bad || !(c->event_mask & KMON_EV_MASK(ev->event_type)))
		return false;
	if (c->n_ns)
		return key && key < KMON_CONTAINER_KEYS && bit_get(c->allowed, key);
	(void)fo;
	return true;
}

static void catch_up(struct fanout *fo, struct consumer *c);

/* A batch takes the lock and this batch's consumer set; a consumer it sees
 * for the first time gets the history events published since its attach's
 * last pass first (at most CATCHUP_DRAIN_MAX, written by this thread: the
 * replay meets the live events with neither a gap nor a duplicate). */
static void begin_batch(struct fanout *fo)
{
	unsigned i;

	pthread_mutex_lock(&fo->lock);
	fo->batch_locked = true;
	/* seq_cst both: either this load sees a set the control thread just
	 * stored, or the control thread sees drain_seq odd and waits. */
	atomic_fetch_add(&fo->drain_seq, 1);
	fo->cur = atomic_load(&fo->live);
	for (i = 0; i < fo->cur->n; i++)
		if (!fo->cur->c[i]->linked)
			catch_up(fo, fo->cur->c[i]);
}

/* The META of ev's container to the shared consumers still waiting for it;
 * the key's bit goes once none is. */
static void shared_meta(struct fanout *fo, const struct kmon_event *ev, uint32_t key)
{
	bool waiting = false;
	unsigned i;

	for (i = 0; i < fo->cur->n_shared; i++) {
		struct consumer *c = fo->cur->shared[i];

		if (!bit_get(c->meta_pending, key))
			continue;
		if (wants(fo, c, ev))
			shared_meta_first(fo, c, key);
		waiting |= bit_get(c->meta_pending, key);
	}
	if (!waiting)
		bit_set(fo->shared_meta, key, false);
}

void fanout__publish(struct fanout *fo, const struct kmon_event *ev)
{
	uint32_t key = ev->container_key;
	unsigned i;

	if (!fo->batch_locked)
		begin_batch(fo);
	if (fo->hist)
		hist_prod__append(fo->hist, ev);
	for (i = 0; i < fo->cur->n_priv; i++) {
		struct consumer *c = fo->cur->priv[i];

		if (wants(fo, c, ev))
			deliver(fo, c, ev, 0);
	}
	if (!fo->cur->n_shared || ev->event_type > KMON_EV_TYPE_MAX)
		return;
	fo->batch_types[ev->event_type]++;
	if (key && key < KMON_CONTAINER_KEYS && bit_get(fo->shared_meta, key))
		shared_meta(fo, ev, key);
}

/* What the batch offered each shared consumer: its events of the types the
 * consumer asked for (a bad one is offered nothing more). */
static void count_shared(struct fanout *fo)
{
	unsigned i, t;

	for (i = 0; i < fo->cur->n_shared; i++) {
		struct consumer *c = fo->cur->shared[i];

		if (c->bad)
			continue;
		for (t = 0; t <= KMON_EV_TYPE_MAX; t++)
			if (c->event_mask & KMON_EV_MASK(t))
				c->produced += fo->batch_types[t];
	}
	memset(fo->batch_types, 0, sizeof(fo->batch_types));
}

/* The consumers' rings first, then the history: a shared consumer that sees
 * the history's new events has their META in its ring (shm/history.h); then
 * the shared consumers that sleep are woken for those events. */
static void publish_all(struct fanout *fo, struct consumer *const *cons, unsigned n)
{
	unsigned i, shared = 0;
	bool bad;

	for (i = 0; i < n; i++) {
		struct consumer *c = cons[i];
		if (c->bad)
			continue;
		shared += c->shared;
		if (!c->dirty)
			continue;
		c->dirty = false;
		(void)ring_prod__publish(c->ring);
		c->fill = ring_prod__fill(c->ring, &bad);
		if (bad)
			mark_bad(fo, c);
	}
	/* Nobody reads the history's count but shared consumers (the replay
	 * reads its head): no store nor fence for it without them. */
	if (!fo->hist || !shared)
		return;
	hist_prod__publish(fo->hist);
	for (i = 0; i < n; i++)
		if (cons[i]->shared && !cons[i]->bad)
			(void)ring_prod__wake(cons[i]->ring);
}

void fanout__flush(struct fanout *fo)
{
	if (!fo->batch_locked)
		return;
	count_shared(fo);
	publish_all(fo, fo->cur->c, fo->cur->n);
	fo->batch_locked = false;
	fo->cur = NULL;
	atomic_fetch_add(&fo->drain_seq, 1); /* even: out of the batch */
	pthread_mutex_unlock(&fo->lock);
}

void fanout__finish(struct fanout *fo)
{
	unsigned i;

	pthread_mutex_lock(&fo->ctl);
	pthread_mutex_lock(&fo->lock);
	for (i = 0; i < fo->n_cons; i++) {
		if (!fo->cons[i]->linked)
			catch_up(fo, fo->cons[i]);
		if (!fo->cons[i]->bad && fo->cons[i]->lost_pending)
			(void)write_lost(fo, fo->cons[i]);
	}
	publish_all(fo, fo->cons, fo->n_cons);
	pthread_mutex_unlock(&fo->lock);
	pthread_mutex_unlock(&fo->ctl);
}

int fanout__set_meta(struct fanout *fo, const struct kmon_meta *meta)
{
	uint32_t key = meta->key;
	struct kmon_meta *m;
	unsigned i;

	if (!key || key >= KMON_CONTAINER_KEYS)
		return -EINVAL;
	pthread_mutex_lock(&fo->ctl);
	pthread_mutex_lock(&fo->lock);
	m = fo->meta[key];
	if (m && !memcmp(m, meta, sizeof(*m))) {
		pthread_mutex_unlock(&fo->lock);
		pthread_mutex_unlock(&fo->ctl);
		return 0;
	}
	if (!m) {
		m = malloc(sizeof(*m));
		if (!m) {
			pthread_mutex_unlock(&fo->lock);
			pthread_mutex_unlock(&fo->ctl);
			return -ENOMEM;
		}
		fo->meta[key] = m;
	}
	*m = *meta;
	for (i = 0; i < fo->n_cons; i++) {
		struct consumer *c = fo->cons[i];
		if (c->n_ns)
			bit_set(c->allowed, key, ns_allowed(c, m));
		bit_set(c->meta_pending, key, true);
	}
	bit_set(fo->shared_meta, key, true);
	pthread_mutex_unlock(&fo->lock);
	pthread_mutex_unlock(&fo->ctl);
	return 0;
}

int fanout__forget_meta(struct fanout *fo, uint32_t key)
{
	unsigned i;

	if (!key || key >= KMON_CONTAINER_KEYS)
		return -EINVAL;
	pthread_mutex_lock(&fo->ctl);
	pthread_mutex_lock(&fo->lock);
	free(fo->meta[key]);
	fo->meta[key] = NULL;
	for (i = 0; i < fo->n_cons; i++) {
		bit_set(fo->cons[i]->meta_pending, key, false);
		if (fo->cons[i]->n_ns)
			bit_set(fo->cons[i]->allowed, key, false);
	}
	bit_set(fo->shared_meta, key, false);
	pthread_mutex_unlock(&fo->lock);
	pthread_mutex_unlock(&fo->ctl);
	return 0;
}

/* Where a replay of the newest `max_n` history events c wants starts, as of
 * history head h. */
static uint64_t replay_start(struct fanout *fo, const struct consumer *c, uint64_t h,
			     size_t max_n)
{
	uint64_t i = h, lo = h > fo->hist_cap ? h - fo->hist_cap : 0;
	struct kmon_event ev;
	size_t n = 0;

	while (i > lo && n < max_n) {
		if (!hist_prod__read(fo->hist, i - 1, &ev))
			break; /* overwritten: the older ones are too */
		i--;
		if (wants(fo, c, &ev))
			n++;
	}
	return i;
}

/* History events up to `to` that will not be replayed: the replay starts
 * later while nothing was replayed yet; after that they are a hole in it,
 * reported in-band as LOST (whether or not c wanted them: they are gone).
 * A shared consumer reads its replay from the history itself and counts
 * such a hole as it finds it. */
static void replay_skip(struct consumer *c, struct replay *r, uint64_t to)
{
	if (r->begun && !c->shared) {
		c->produced += to - r->pos;
		lose(c, to - r->pos);
	}
	r->pos = to;
}

/* Replays the history events [r->pos, end) c wants, marked as replay;
 * those the drain overwrote before they were copied are skipped. A quarter
 * of the ring stays free for live events: should the catch-up with a flood
 * reach it, the rest of the replay is reported LOST instead. */
static void replay_range(struct fanout *fo, struct consumer *c, struct replay *r, uint64_t end)
{
	uint64_t started = hist_prod__started(fo->hist);
	struct kmon_event ev;

	if (started > fo->hist_cap && r->pos < started - fo->hist_cap)
		replay_skip(c, r, started - fo->hist_cap < end ? started - fo->hist_cap : end);
	while (r->pos < end) {
		if (!hist_prod__read(fo->hist, r->pos, &ev)) {
			replay_skip(c, r, r->pos + 1);
			continue;
		}
		r->pos++;
		if (!wants(fo, c, &ev))
			continue;
		r->begun = true;
		if (c->shared) {
			deliver_shared(fo, c, &ev); /* its META only */
			c->replayed++;
			continue;
		}
		if (ring_prod__free_bytes(c->ring) < c->ring_bytes / 4 + 2 * EVENT_REC_BYTES) {
			c->produced++;
			lose(c, 1);
			continue;
		}
		deliver(fo, c, &ev, KMON_RECF_REPLAY);
	}
}

/* The replay without the lock runs again while more than this many events
 * arrived during its previous pass; what is left the drain replays itself
 * at its next batch (catch_up()), CATCHUP_DRAIN_MAX at most: should the
 * drain have outrun CATCHUP_ROUNDS passes, the older rest is reported LOST.
 * The passes converge: each is shorter than the one before unless the drain
 * outruns the copy, and then the ring fills up and the rest of a pass only
 * counts losses, which is faster than any drain. */
#define CATCHUP_LEFT_MAX 64
#define CATCHUP_ROUNDS 64

/* Writes zeros over the free ring space the drain's catch-up will write
 * into (what is left plus a batch under way), so that the drain takes no
 * page fault for it (on this VM a first
 * touch of a shared-memory page costs tens of microseconds). Nothing is
 * committed: the consumer never sees these bytes, at most a PAD record
 * should the space wrap around the end of the ring. */
static void prefault(struct consumer *c)
{
	uint32_t len = (CATCHUP_LEFT_MAX + 256 + 4) * EVENT_REC_BYTES + 4 * META_REC_BYTES;
	size_t free_bytes = ring_prod__free_bytes(c->ring);
	struct kmon_rec_hdr *h;
	bool bad;

	if (free_bytes < 2 * (size_t)len)
		return; /* little room: the catch-up will mostly count losses */
	h = ring_prod__reserve(c->ring, len, &bad);
	if (h)
		memset(h, 0, len);
}

/* The drain's side of a link: the history events since the attach's last
 * pass, no more than CATCHUP_DRAIN_MAX (older ones are reported LOST), then
 * live events from this batch on. Besides the events published while the
 * attach finished, a batch of the drain that was under way at the link
 * (up to 256 events) lands here: a quick copy on the drain's own thread, a
 * few microseconds, where the old catch-up under the lock stopped at 64. */
#define CATCHUP_DRAIN_MAX 1024
static void catch_up(struct fanout *fo, struct consumer *c)
{
	uint64_t h = fo->hist ? hist_prod__head(fo->hist) : 0;

	if (c->rp.on) {
		if (h - c->rp.pos > CATCHUP_DRAIN_MAX)
			replay_skip(c, &c->rp, h - CATCHUP_DRAIN_MAX);
		replay_range(fo, c, &c->rp, h);
	}
	if (c->shared && !write_join(fo, c, h))
		mark_bad(fo, c); /* cannot happen: the attach left half the ring free */
	if (c->shared)
		for (unsigned i = 0; i < BITMAP_BYTES; i++)
			fo->shared_meta[i] |= c->meta_pending[i];
	c->dirty = true; /* what the attach wrote is published with this batch */
	c->linked = true;
}

/* Waits until no batch of the drain can still use a consumer set replaced
 * before this call (an odd drain_seq is a batch in progress). */
static void quiesce(struct fanout *fo)
{
	uint64_t s = atomic_load(&fo->drain_seq);

	while ((s & 1) && atomic_load(&fo->drain_seq) == s) {
		struct timespec ts = { 0, 20000 };

		nanosleep(&ts, NULL);
	}
}

/* Makes fo->cons what the drain's next batch uses (ctl held). */
static int set_replace(struct fanout *fo)
{
	struct cons_set *n = malloc(sizeof(*n) + 2 * fo->n_cons * sizeof(n->c[0])), *old;
	unsigned i;

	if (!n)
		return -ENOMEM;
	n->n = fo->n_cons;
	memcpy(n->c, fo->cons, fo->n_cons * sizeof(n->c[0]));
	n->priv = n->c + n->n;
	n->n_priv = n->n_shared = 0;
	for (i = 0; i < n->n; i++)
		if (!n->c[i]->shared)
			n->priv[n->n_priv++] = n->c[i];
	n->shared = n->priv + n->n_priv;
	for (i = 0; i < n->n; i++)
		if (n->c[i]->shared)
			n->shared[n->n_shared++] = n->c[i];
	old = atomic_exchange(&fo->live, n);
	quiesce(fo);
	free(old);
	return 0;
}

/* A consumer is built without the lock, on a ring nobody else sees yet (ring,
 * dictionary, megabytes of replay), then linked under it after catching up
 * with the few events the drain published meanwhile: the drain never waits
 * for an attach longer than that. fo->meta is read without the lock because
 * only the control thread, the one attaching, writes it. */
int fanout__attach(struct fanout *fo, const struct fanout_sub *sub, uint32_t *id, int fds[4],
		   size_t *ring_bytes, size_t *replayed_bytes)
{
	struct consumer *c;
	struct replay r = { 0 };
	char rname[80];
	unsigned i;
	int err = -ENOMEM;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	snprintf(c->name, sizeof(c->name), "%s", sub->name);
	c->uid = sub->uid;
	c->pid = sub->pid;
	c->event_mask = sub->event_mask ? sub->event_mask : KMON_EV_MASK_ALL;
	c->ring_bytes = sub->ring_bytes ? sub->ring_bytes : fo->o.default_ring_bytes;
	if (c->ring_bytes > fo->o.max_ring_bytes && !sub->ring)
		c->ring_bytes = fo->o.max_ring_bytes;
	c->meta_pending = calloc(1, BITMAP_BYTES);
	if (!c->meta_pending)
		goto fail;
	if (sub->n_namespaces) {
		c->allowed = calloc(1, BITMAP_BYTES);
		c->ns = calloc(sub->n_namespaces, sizeof(*c->ns));
		if (!c->allowed || !c->ns)
			goto fail;
		for (i = 0; i < sub->n_namespaces; i++)
			snprintf(c->ns[i], sizeof(c->ns[i]), "%s", sub->namespaces[i]);
		c->n_ns = sub->n_namespaces;
	}
	/* Every event of the node is in the history: only a consumer that
	 * filters by type alone reads it (the library drops the other types);
	 * one with a namespace filter gets copies of its events as before. */
	c->shared = sub->shared && !c->n_ns && fo->hist;
	c->join_from = UINT64_MAX;

	/* Refuse early, before making a ring for nothing; checked again at
	 * the link. */
	pthread_mutex_lock(&fo->ctl);
	if (fo->n_cons >= fo->o.max_consumers) {
		pthread_mutex_unlock(&fo->ctl);
		err = -ENOSPC;
		goto fail;
	}
	c->id = fo->next_id++;
	pthread_mutex_unlock(&fo->ctl);
	snprintf(rname, sizeof(rname), "%u-%s", c->id, c->name);
	c->ring = sub->ring ? sub->ring : ring_prod__new(c->ring_bytes, rname);
	if (!c->ring) {
		err = -errno;
		goto fail;
	}
	/* The whole dictionary goes to a new consumer first, as far as its ring
	 * holds it with room to spare; what does not fit follows lazily, before
	 * the first event of each container. */
	for (i = 1; i < KMON_CONTAINER_KEYS; i++) {
		bool bad;

		if (!fo->meta[i])
			continue;
		if (c->n_ns) {
			bit_set(c->allowed, i, ns_allowed(c, fo->meta[i]));
			if (!bit_get(c->allowed, i))
				continue;
		}
		if (!ring_prod__room(c->ring, 2 * META_REC_BYTES + c->ring_bytes / 2, &bad) ||
		    !write_meta(fo, c, fo->meta[i]))
			bit_set(c->meta_pending, i, true);
	}
	/* The newest history it asked for, as far as half its ring holds, then
	 * what came in meanwhile, as far as three quarters do. */
	if (sub->replay_bytes && fo->hist_cap) {
		size_t max_n = sub->replay_bytes / EVENT_REC_BYTES;
		/* A shared consumer's replay is in the history, not its ring. */
		size_t room = c->shared ? max_n : ring_prod__free_bytes(c->ring) / 2 / EVENT_REC_BYTES;
		uint64_t h = hist_prod__head(fo->hist);

		r.on = true;
		r.pos = replay_start(fo, c, h, max_n < room ? max_n : room);
		c->join_from = r.pos;
		replay_range(fo, c, &r, h);
		for (i = 0; i < CATCHUP_ROUNDS; i++) {
			h = hist_prod__head(fo->hist);
			if (h - r.pos <= CATCHUP_LEFT_MAX)
				break;
			replay_range(fo, c, &r, h);
		}
		if (!c->shared) /* its catch-up writes no event into the ring */
			prefault(c);
	}

	/* Linked without the drain's lock: the drain's next batch takes the
	 * new set and catches the replay up (begin_batch()). */
	*replayed_bytes = (c->shared ? c->replayed : c->delivered) * EVENT_REC_BYTES;
	(void)ring_prod__publish(c->ring); /* the replay so far, even if no batch follows */
	c->rp = r;
	pthread_mutex_lock(&fo->ctl);
	if (fo->n_cons >= fo->o.max_consumers) {
		pthread_mutex_unlock(&fo->ctl);
		err = -ENOSPC;
		goto fail;
	}
	fo->cons[fo->n_cons++] = c;
	err = set_replace(fo);
	if (err) {
		fo->cons[--fo->n_cons] = NULL;
		pthread_mutex_unlock(&fo->ctl);
		goto fail;
	}
	pthread_mutex_unlock(&fo->ctl);

	*id = c->id;
	*ring_bytes = c->ring_bytes;
	fds[3] = c->shared ? hist_prod__consumer_fd(fo->hist) : -1;
	return ring_prod__consumer_fds(c->ring, &fds[0], &fds[1], &fds[2]);
fail:
	if (c->ring == sub->ring)
		c->ring = NULL; /* the caller's until we succeed */
	consumer_free(c);
	return err;
}

static void fill_stats(const struct consumer *c, const struct hist_prod *hist,
		       struct fanout_consumer_stats *s)
{
	struct ring_prod_stats rs;

	memset(s, 0, sizeof(*s));
	s->id = c->id;
	snprintf(s->name, sizeof(s->name), "%s", c->name);
	s->uid = c->uid;
	s->pid = c->pid;
	s->produced = c->produced;
	s->delivered = c->delivered;
	s->lost = c->lost;
	s->shared = c->shared;
	if (c->shared) {
		/* What it reports: the drain never drops an event for it, and it
		 * counts what it found overwritten in the history; plus, should
		 * the position it reports be older than the oldest event still
		 * there, what it will find overwritten when it reads again: a
		 * consumer that stopped reading shows its losses grow. */
		uint64_t lost = ring_prod__consumer_note(c->ring, KMON_HIST_NOTE_LOST);
		uint64_t pos = ring_prod__consumer_note(c->ring, KMON_HIST_NOTE_POS);
		uint64_t head = hist_prod__head(hist), cap = hist_prod__cap(hist);
		/* head, not started: the latter runs a step ahead. */
		uint64_t oldest = head > cap ? head - cap : 0;

		s->lost_reported = lost;
		if (pos < oldest)
			lost += oldest - pos < UINT64_MAX - lost ? oldest - pos : UINT64_MAX - lost;
		s->lost = lost < c->produced ? lost : c->produced;
		s->delivered = c->produced - s->lost;
		/* Its ring holds only META: how far behind it is, as the share of
		 * the history between its reported position and the head (1: a
		 * whole history or more, it is losing events). */
		s->fill = pos >= head ? 0 : head - pos >= cap ? 1 : (double)(head - pos) / (double)cap;
	} else {
		s->fill = c->fill;
	}
	s->ring_bytes = c->ring_bytes;
	ring_prod__get_stats(c->ring, &rs);
	s->wakeups = rs.wakeups;
}

int fanout__detach(struct fanout *fo, uint32_t id, struct fanout_consumer_stats *final)
{
	struct consumer *c = NULL;
	unsigned i;

	pthread_mutex_lock(&fo->ctl);
	for (i = 0; i < fo->n_cons; i++) {
		if (fo->cons[i]->id == id) {
			c = fo->cons[i];
			fo->cons[i] = fo->cons[--fo->n_cons];
			fo->cons[fo->n_cons] = NULL;
			break;
		}
	}
	/* Once no batch uses it any more, the consumer is ours to free. */
	if (c && set_replace(fo)) {
		fo->cons[fo->n_cons++] = c;
		pthread_mutex_unlock(&fo->ctl);
		return -ENOMEM;
	}
	pthread_mutex_unlock(&fo->ctl);
	if (!c)
		return -ENOENT;
	if (final)
		fill_stats(c, fo->hist, final);
	consumer_free(c);
	return 0;
}

unsigned fanout__take_bad(struct fanout *fo, uint32_t *ids, unsigned n)
{
	unsigned i, k = 0;

	pthread_mutex_lock(&fo->ctl);
	pthread_mutex_lock(&fo->lock);
	for (i = 0; i < fo->n_cons && k < n; i++)
		if (fo->cons[i]->bad)
			ids[k++] = fo->cons[i]->id;
	pthread_mutex_unlock(&fo->lock);
	pthread_mutex_unlock(&fo->ctl);
	return k;
}

unsigned fanout__consumer_count(struct fanout *fo)
{
	unsigned n;

	pthread_mutex_lock(&fo->ctl);
	n = fo->n_cons;
	pthread_mutex_unlock(&fo->ctl);
	return n;
}

unsigned fanout__consumer_stats(struct fanout *fo, struct fanout_consumer_stats *out, unsigned n)
{
	unsigned i, total;

	pthread_mutex_lock(&fo->ctl);
	pthread_mutex_lock(&fo->lock);
	total = fo->n_cons;
	for (i = 0; i < total && i < n; i++)
		fill_stats(fo->cons[i], fo->hist, &out[i]);
	pthread_mutex_unlock(&fo->lock);
	pthread_mutex_unlock(&fo->ctl);
	return total;
}
