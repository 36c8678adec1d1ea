// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's fan-out, without root: real rings (memfd), real records, read
 * back as a consumer reads them. META before a container's first event,
 * subscriptions by namespace and event type, LOST accounting, history replay. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <linux/types.h>
#include "agent/fanout.h"
#include "bpf/kmon_event.h"
#include "shm/history.h"
#include "shm/meta.h"
#include "shm/ring.h"

#define RING (64u << 10)

struct rec {
	uint16_t type, flags;
	uint64_t seq;
	uint32_t key, type_ev;
	uint64_t ts, lost, since;
	uint64_t from, live_from; /* JOIN */
};

/* A container's META: its key and namespace, nothing else. */
static void set_ns(struct fanout *fo, uint32_t key, const char *ns)
{
	struct kmon_meta m;

	memset(&m, 0, sizeof(m));
	m.key = key;
	snprintf(m.namespace, sizeof(m.namespace), "%s", ns);
	assert_int_equal(fanout__set_meta(fo, &m), 0);
}

static struct fanout *mk(void)
{
	struct fanout_opts o = { .sz = sizeof(o), .max_consumers = 4, .default_ring_bytes = RING,
				 .max_ring_bytes = 1u << 20, .history_bytes = 64u << 10 };
	struct fanout *fo = fanout__new(&o);
	struct kmon_meta m;

	assert_non_null(fo);
	memset(&m, 0, sizeof(m));
	m.key = 5;
	strcpy(m.namespace, "team-a");
	strcpy(m.pod, "pod-a");
	assert_int_equal(fanout__set_meta(fo, &m), 0);
	m.key = 6;
	strcpy(m.namespace, "team-b");
	strcpy(m.pod, "pod-b");
	assert_int_equal(fanout__set_meta(fo, &m), 0);
	return fo;
}

static struct ring_cons *attach_hist(struct fanout *fo, struct fanout_sub *sub, uint32_t *id,
				     size_t *replayed, struct hist_cons **hist)
{
	size_t rb, rp;
	int fds[4];
	struct ring_cons *c;

	assert_int_equal(fanout__attach(fo, sub, id, fds, &rb, replayed ? replayed : &rp), 0);
	c = ring_cons__map(fds[0], fds[1], fds[2], rb, NULL, 0);
	assert_non_null(c);
	assert_int_equal(ring_cons__start(c), 0);
	if (hist)
		*hist = fds[3] >= 0 ? hist_cons__map(fds[3], NULL, 0) : NULL;
	assert_true(fds[3] < 0 || (hist && *hist));
	return c;
}

/* A consumer given copies of its events in its ring. */
static struct ring_cons *attach(struct fanout *fo, struct fanout_sub *sub, uint32_t *id,
				size_t *replayed)
{
	return attach_hist(fo, sub, id, replayed, NULL);
}

static void publish(struct fanout *fo, uint32_t type, uint32_t key, uint64_t ts)
{
	struct kmon_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.version = KMON_EVENT_VERSION;
	ev.event_type = type;
	ev.container_key = key;
	ev.timestamp = ts;
	fanout__publish(fo, &ev);
}

static unsigned drain(struct ring_cons *c, struct rec *out, unsigned n)
{
	const struct kmon_rec_hdr *h;
	bool bad = false;
	unsigned i = 0;

	while ((h = ring_cons__peek(c, &bad))) {
		assert_true(i < n);
		memset(&out[i], 0, sizeof(out[i]));
		out[i].type = h->type;
		out[i].flags = h->flags;
		out[i].seq = h->seq;
		if (h->type == KMON_REC_EVENT) {
			const struct kmon_event *ev = (const void *)(h + 1);
			out[i].key = ev->container_key;
			out[i].type_ev = ev->event_type;
			out[i].ts = ev->timestamp;
		} else if (h->type == KMON_REC_META) {
			out[i].key = ((const struct kmon_meta *)(h + 1))->key;
		} else if (h->type == KMON_REC_LOST) {
			const struct kmon_rec_lost *l = (const void *)(h + 1);
			out[i].lost = l->count;
			out[i].since = l->since_seq;
		} else if (h->type == KMON_REC_JOIN) {
			const struct kmon_rec_join *j = (const void *)(h + 1);
			out[i].from = j->from;
			out[i].live_from = j->live_from;
		}
		if (h->type != KMON_REC_PAD)
			i++;
		ring_cons__advance(c, h);
	}
	ring_cons__release(c);
	assert_false(bad);
	return i;
}

/* Each container's META comes before its first event, once; a namespace
 * subscription sees only its pods (no host events); an event-type one only
 * its types. */
static void meta_first_and_subscriptions(void **state)
{
	const char ns[1][KMON_PROTO_NS_LEN] = { "team-a" };
	struct fanout *fo = mk();
	struct fanout_sub all = { .name = "all" };
	struct fanout_sub a = { .name = "a", .namespaces = ns, .n_namespaces = 1 };
	struct fanout_sub ex = { .name = "exec", .event_mask = KMON_EV_MASK(KMON_EV_PROCESS_EXEC) };
	struct ring_cons *ca, *cb, *ce;
	struct rec r[32];
	uint32_t ida, idb, ide;
	unsigned n;

	(void)state;
	cb = attach(fo, &all, &idb, NULL);
	ca = attach(fo, &a, &ida, NULL);
	ce = attach(fo, &ex, &ide, NULL);
	publish(fo, KMON_EV_MEMORY_ALLOC, 5, 1);
	publish(fo, KMON_EV_MEMORY_ALLOC, 6, 2);
	publish(fo, KMON_EV_PROCESS_EXEC, 0, 3);
	publish(fo, KMON_EV_PROCESS_EXEC, 5, 4);
	fanout__flush(fo);

	/* Events in order, each container's META before its first event. */
	{
		const uint64_t want_b[] = { 1, 2, 3, 4 }, want_a[] = { 1, 4 }, want_e[] = { 3, 4 };
		const struct { struct ring_cons *c; const uint64_t *want; unsigned n; } cs[] = {
			{ cb, want_b, 4 }, { ca, want_a, 2 }, { ce, want_e, 2 } };

		for (unsigned k = 0; k < 3; k++) {
			bool seen[8] = { false };
			unsigned got = 0;
			uint64_t last_seq = 0;

			n = drain(cs[k].c, r, 32);
			for (unsigned i = 0; i < n; i++) {
				if (r[i].type == KMON_REC_META) {
					assert_true(r[i].key < 8);
					seen[r[i].key] = true;
					continue;
				}
				assert_int_equal(r[i].type, KMON_REC_EVENT);
				assert_true(got < cs[k].n);
				assert_int_equal(r[i].ts, cs[k].want[got]);
				if (r[i].key)
					assert_true(seen[r[i].key]);
				if (got)
					assert_int_equal(r[i].seq, last_seq + 1);
				last_seq = r[i].seq;
				if (k == 2)
					assert_int_equal(r[i].type_ev, KMON_EV_PROCESS_EXEC);
				got++;
			}
			assert_int_equal(got, cs[k].n);
			if (k == 1)
				assert_false(seen[6]); /* team-b is not team-a's business */
		}
	}

	ring_cons__free(ca);
	ring_cons__free(cb);
	ring_cons__free(ce);
	assert_int_equal(fanout__detach(fo, ida, NULL), 0);
	assert_int_equal(fanout__detach(fo, idb, NULL), 0);
	assert_int_equal(fanout__detach(fo, ide, NULL), 0);
	fanout__free(fo);
}

/* A consumer that does not read loses what its ring cannot hold; once it
 * reads, a LOST record says how many from which seq, before the next event,
 * and delivered + lost == produced. */
static void lost_then_resume(void **state)
{
	struct fanout *fo = mk();
	struct fanout_sub s = { .name = "slow", .ring_bytes = 4096 };
	struct fanout_consumer_stats st;
	static struct rec r[4096];
	struct ring_cons *c;
	uint64_t events = 0, lost = 0, expect_seq = 0;
	uint32_t id;
	unsigned n, i, total = 500;

	(void)state;
	c = attach(fo, &s, &id, NULL);
	for (i = 0; i < total; i++)
		publish(fo, KMON_EV_MEMORY_ALLOC, 0, i);
	fanout__flush(fo);
	n = drain(c, r, 4096);
	publish(fo, KMON_EV_MEMORY_ALLOC, 0, total);
	fanout__flush(fo);
	n += drain(c, r + n, 4096 - n);
	for (i = 0; i < n; i++) {
		if (r[i].type == KMON_REC_LOST) {
			assert_int_equal(r[i].since, expect_seq);
			lost += r[i].lost;
			expect_seq += r[i].lost;
		} else if (r[i].type == KMON_REC_EVENT) {
			if (!events)
				expect_seq = r[i].seq; /* the first seq is the fan-out's to choose */
			assert_int_equal(r[i].seq, expect_seq);
			expect_seq++;
			events++;
		}
	}
	assert_true(lost > 0);
	assert_int_equal(r[n - 1].type, KMON_REC_EVENT);
	assert_int_equal(r[n - 1].ts, total); /* the LOST came before it */
	assert_int_equal(events + lost, total + 1);
	ring_cons__free(c);
	assert_int_equal(fanout__detach(fo, id, &st), 0);
	assert_int_equal(st.delivered + st.lost, st.produced);
	assert_int_equal(st.lost, lost);
	fanout__free(fo);
}

/* A late consumer asking for history gets it first, flagged as replay and
 * with the META it needs, then the live stream. */
static void replay_to_late_consumer(void **state)
{
	struct fanout *fo = mk();
	struct fanout_sub s = { .name = "late", .replay_bytes = 32u << 10 };
	struct ring_cons *c;
	struct rec r[64];
	size_t replayed = 0;
	uint32_t id;
	unsigned n, i, ev = 0, replay_ev = 0;
	bool meta5 = false;

	(void)state;
	for (i = 0; i < 10; i++)
		publish(fo, KMON_EV_MEMORY_ALLOC, 5, 100 + i);
	fanout__flush(fo);
	c = attach(fo, &s, &id, &replayed);
	assert_true(replayed > 0);
	publish(fo, KMON_EV_MEMORY_ALLOC, 5, 200);
	fanout__flush(fo);
	n = drain(c, r, 64);
	for (i = 0; i < n; i++) {
		if (r[i].type == KMON_REC_META && r[i].key == 5)
			meta5 = true;
		if (r[i].type != KMON_REC_EVENT)
			continue;
		assert_true(meta5); /* META before the first event of key 5 */
		if (r[i].flags & KMON_RECF_REPLAY) {
			assert_int_equal(r[i].ts, 100 + replay_ev);
			replay_ev++;
		} else {
			assert_int_equal(r[i].ts, 200);
		}
		ev++;
	}
	assert_int_equal(replay_ev, 10);
	assert_int_equal(ev, 11);
	ring_cons__free(c);
	assert_int_equal(fanout__detach(fo, id, NULL), 0);
	fanout__free(fo);
}

/* A shared consumer: its ring gets META and one JOIN, never an event; the
 * events are in the history, published only with the batch, each after its
 * container's META; a replay is the history from JOIN's `from`, up to
 * `live_from`. One with a namespace filter is not given the history: it
 * would read other namespaces' events there. */
static void shared_consumer_reads_the_history(void **state)
{
	const char ns[1][KMON_PROTO_NS_LEN] = { "team-a" };
	struct fanout *fo = mk();
	struct fanout_sub sh = { .name = "shared", .shared = true };
	struct fanout_sub nss = { .name = "ns", .shared = true, .namespaces = ns, .n_namespaces = 1 };
	struct fanout_sub late = { .name = "late", .shared = true, .replay_bytes = 32u << 10 };
	struct fanout_consumer_stats st[4];
	struct ring_cons *c, *cn, *cl;
	struct hist_cons *h, *hn, *hl;
	struct kmon_event out[16];
	struct rec r[16];
	uint64_t pos, lost = 0, pub;
	uint32_t id, idn, idl;
	unsigned n, i, metas = 0;

	(void)state;
	c = attach_hist(fo, &sh, &id, NULL, &h);
	assert_non_null(h);
	cn = attach_hist(fo, &nss, &idn, NULL, &hn);
	assert_null(hn);
	/* A container the consumer has no META for yet. */
	set_ns(fo, 7, "team-c");
	publish(fo, KMON_EV_MEMORY_ALLOC, 5, 1);
	publish(fo, KMON_EV_MEMORY_ALLOC, 7, 2);
	publish(fo, KMON_EV_PROCESS_EXEC, 0, 3);
	assert_int_equal(hist_cons__published(h), 0); /* not before the batch ends */
	fanout__flush(fo);
	pub = hist_cons__published(h);
	assert_int_equal(pub, 3);
	n = drain(c, r, 16);
	for (i = 0; i < n; i++) {
		assert_int_not_equal(r[i].type, KMON_REC_EVENT);
		metas += r[i].type == KMON_REC_META;
		if (r[i].type == KMON_REC_JOIN) {
			assert_int_equal(r[i].from, 0);
			assert_int_equal(r[i].live_from, 0);
			assert_int_equal(i, n - 1 - (r[n - 1].type == KMON_REC_META));
		}
	}
	/* The dictionary at the attach (5, 6) and 7 before its event. */
	assert_int_equal(metas, 3);
	assert_int_equal(r[n - 1].type, KMON_REC_META);
	assert_int_equal(r[n - 1].key, 7);
	pos = 0;
	assert_int_equal(hist_cons__read(h, &pos, pub, out, 16, &lost), 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(out[i].timestamp, i + 1);
	/* The namespace consumer got copies, as before: only team-a's event. */
	n = drain(cn, r, 16);
	for (i = 0, metas = 0; i < n; i++)
		if (r[i].type == KMON_REC_EVENT) {
			assert_int_equal(r[i].ts, 1);
			metas++;
		}
	assert_int_equal(metas, 1);

	/* A late shared consumer: its replay is history events [from, live_from). */
	cl = attach_hist(fo, &late, &idl, NULL, &hl);
	assert_non_null(hl);
	publish(fo, KMON_EV_MEMORY_ALLOC, 5, 4);
	fanout__flush(fo);
	n = drain(cl, r, 16);
	assert_int_equal(r[n - 1].type, KMON_REC_JOIN);
	assert_int_equal(r[n - 1].from, 0);
	assert_int_equal(r[n - 1].live_from, 3);
	pos = r[n - 1].from;
	assert_int_equal(hist_cons__read(hl, &pos, hist_cons__published(hl), out, 16, &lost), 4);
	assert_int_equal(out[3].timestamp, 4);
	assert_int_equal(lost, 0);

	/* The agent's counts: what the consumer reports lost, never more than it
	 * was given. */
	ring_cons__set_note(c, KMON_HIST_NOTE_POS, 4);
	ring_cons__set_note(c, KMON_HIST_NOTE_LOST, 1);
	assert_int_equal(fanout__consumer_stats(fo, st, 4), 3);
	for (i = 0; i < 3; i++) {
		if (st[i].id == id) {
			assert_true(st[i].shared);
			assert_int_equal(st[i].produced, 4);
			assert_int_equal(st[i].lost, 1);
			assert_int_equal(st[i].delivered, 3);
		} else if (st[i].id == idn) {
			assert_false(st[i].shared);
		}
	}
	ring_cons__set_note(c, KMON_HIST_NOTE_LOST, 1000);
	fanout__consumer_stats(fo, st, 4);
	for (i = 0; i < 3; i++)
		if (st[i].id == id) {
			assert_int_equal(st[i].lost, 4);
			assert_int_equal(st[i].lost_reported, 1000);
		}
	/* One that stopped reading: its losses grow with what the history
	 * overwrote past the position it last reported (the history holds 512
	 * events here), though it reports none. */
	ring_cons__set_note(c, KMON_HIST_NOTE_LOST, 0);
	for (i = 0; i < 600; i++)
		publish(fo, KMON_EV_MEMORY_ALLOC, 0, 100 + i);
	fanout__flush(fo);
	fanout__consumer_stats(fo, st, 4);
	for (i = 0; i < 3; i++)
		if (st[i].id == id) {
			assert_int_equal(st[i].produced, 604);
			assert_int_equal(st[i].lost, 604 - 512 - 4);
			assert_int_equal(st[i].delivered, st[i].produced - st[i].lost);
			assert_int_equal(st[i].lost_reported, 0);
			/* and it is a whole history behind */
			assert_true(st[i].fill == 1.0);
		}
	/* Its fill is how far behind it is: a quarter of the history, then
	 * none. */
	ring_cons__set_note(c, KMON_HIST_NOTE_POS, 604 - 128);
	fanout__consumer_stats(fo, st, 4);
	for (i = 0; i < 3; i++)
		if (st[i].id == id)
			assert_true(st[i].fill == 0.25);
	ring_cons__set_note(c, KMON_HIST_NOTE_POS, 604);
	fanout__consumer_stats(fo, st, 4);
	for (i = 0; i < 3; i++)
		if (st[i].id == id)
			assert_true(st[i].fill == 0.0);
	ring_cons__free(c);
	ring_cons__free(cn);
	ring_cons__free(cl);
	hist_cons__free(h);
	hist_cons__free(hl);
	assert_int_equal(fanout__detach(fo, id, NULL), 0);
	assert_int_equal(fanout__detach(fo, idn, NULL), 0);
	assert_int_equal(fanout__detach(fo, idl, NULL), 0);
	fanout__free(fo);
}

/* Shared consumers, one of them asking for allocations only: each gets a
 * container's META once, before the first event of it that it wants, and
 * again once after the META changed; what each was offered counts only the
 * types it asked for (the drain counts a batch's events by type, not each
 * consumer's). */
static void shared_consumers_meta_once_and_counts_by_type(void **state)
{
	struct fanout *fo = mk();
	struct fanout_sub all = { .name = "all", .shared = true };
	struct fanout_sub allocs = { .name = "allocs", .shared = true,
				     .event_mask = KMON_EV_MASK(KMON_EV_MEMORY_ALLOC) };
	struct fanout_consumer_stats st[2];
	struct ring_cons *c[2];
	struct hist_cons *h[2];
	struct rec r[16];
	uint32_t id[2];
	unsigned n, i, k, metas;

	(void)state;
	c[0] = attach_hist(fo, &all, &id[0], NULL, &h[0]);
	c[1] = attach_hist(fo, &allocs, &id[1], NULL, &h[1]);
	set_ns(fo, 9, "team-x");
	publish(fo, KMON_EV_PROCESS_EXEC, 9, 1);
	publish(fo, KMON_EV_MEMORY_ALLOC, 9, 2);
	publish(fo, KMON_EV_MEMORY_ALLOC, 9, 3);
	publish(fo, KMON_EV_PROCESS_EXEC, 0, 4);
	fanout__flush(fo);
	set_ns(fo, 9, "team-y");
	for (i = 0; i < 100; i++)
		publish(fo, i % 2 ? KMON_EV_MEMORY_ALLOC : KMON_EV_MEMORY_FREE, 9, 10 + i);
	fanout__flush(fo);
	for (k = 0; k < 2; k++) {
		n = drain(c[k], r, 16);
		for (i = 0, metas = 0; i < n; i++) {
			assert_int_not_equal(r[i].type, KMON_REC_EVENT);
			/* mk()'s dictionary (keys 5, 6) came at the attach */
			metas += r[i].type == KMON_REC_META && r[i].key == 9;
		}
		assert_int_equal(metas, 2); /* team-x, then team-y */
	}
	assert_int_equal(fanout__consumer_stats(fo, st, 2), 2);
	for (i = 0; i < 2; i++)
		assert_int_equal(st[i].produced, st[i].id == id[0] ? 104 : 52);
	for (k = 0; k < 2; k++) {
		ring_cons__free(c[k]);
		hist_cons__free(h[k]);
		assert_int_equal(fanout__detach(fo, id[k], NULL), 0);
	}
	fanout__free(fo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(meta_first_and_subscriptions),
		cmocka_unit_test(lost_then_resume),
		cmocka_unit_test(replay_to_late_consumer),
		cmocka_unit_test(shared_consumer_reads_the_history),
		cmocka_unit_test(shared_consumers_meta_once_and_counts_by_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
