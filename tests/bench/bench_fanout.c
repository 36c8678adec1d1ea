// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's fan-out alone, without the kernel: what one event costs the
 * drain thread per consumer copy, against a plain memcpy of the same 128-byte
 * records into a buffer of the same size.
 *
 *   bench_fanout [ROUNDS]
 *
 * For 0, 1, 2 and 4 consumers (with the agent's default 8 MiB of history,
 * so 0 consumers is the cost of that copy alone) the drain's calls (fanout__publish per event,
 * fanout__flush per 256) run on this thread, measured in thread CPU time;
 * each consumer is a thread reading its ring through the consumer API (with
 * the eventfd sleep path) and checksumming every record, as consumers do.
 * Rounds of 65536 events fit any 16 MiB ring, so no copy is ever dropped and
 * the figure is the copy path, not the full-ring path; the median round is
 * reported. Prints a table and a JSON line.
 *
 *   bench_fanout attach [SECONDS]
 *
 * How long the drain waits for the fan-out's lock while consumers attach with
 * 8 MiB of history replay each and detach, in a loop on another thread (the
 * control thread's part), against the same with nobody attaching. The drain's
 * calls run on this thread, paced to about 1M events/s in batches of 256,
 * with one live consumer reading; the wait is the time of each batch's first
 * fanout__publish() (the one that takes the lock), split by what the thread's
 * context switches say: asleep on the lock (voluntary) or preempted
 * (involuntary: the scheduler's doing on a busy machine, not the fan-out's).
 * Prints the longest wait, the 99.9th percentile and the attaches done, and a
 * JSON line.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <linux/types.h>
#include "agent/fanout.h"
#include "bpf/kmon_event.h"
#include "shm/ring.h"

#define ROUND_EVENTS 65536u
#define BATCH 256u
#define RING_BYTES (16u << 20)
#define MAX_CONS 4

struct reader {
	pthread_t t;
	struct ring_cons *ring;
	_Atomic uint64_t events;
	_Atomic bool stop;
	uint64_t checksum;
};

static uint64_t thread_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	bool bad;

	for (;;) {
		const struct kmon_rec_hdr *h = ring_cons__peek(r->ring, &bad);

		if (bad) {
			fprintf(stderr, "bench_fanout: malformed ring\n");
			exit(1);
		}
		if (!h) {
			struct pollfd p = { .fd = ring_cons__eventfd(r->ring), .events = POLLIN };

			if (atomic_load(&r->stop))
				break;
			if (ring_cons__prepare_sleep(r->ring) && poll(&p, 1, 10) < 0 && errno != EINTR) {
				perror("poll");
				exit(1);
			}
			ring_cons__wake(r->ring);
			continue;
		}
		if (h->type == KMON_REC_EVENT) {
			const struct kmon_event *ev = (const void *)(h + 1);

			r->checksum = r->checksum * 31 + ev->pid + ev->size + ev->timestamp;
			atomic_fetch_add_explicit(&r->events, 1, memory_order_relaxed);
		}
		ring_cons__advance(r->ring, h);
		if ((atomic_load_explicit(&r->events, memory_order_relaxed) & 63) == 0)
			ring_cons__release(r->ring);
	}
	ring_cons__release(r->ring);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median producer ns per event over `rounds` rounds with k consumers. */
static double run(unsigned k, unsigned rounds, uint64_t *lost_out, uint64_t *wakeups_out)
{
	struct fanout_opts o = { .sz = sizeof(o), .max_consumers = MAX_CONS,
				 .default_ring_bytes = RING_BYTES, .max_ring_bytes = RING_BYTES,
				 .history_bytes = 8u << 20 /* the agent's default */ };
	struct reader rd[MAX_CONS];
	struct kmon_event ev;
	uint64_t *per = calloc(rounds, sizeof(*per)), seq = 0, lost = 0, wakeups = 0;
	struct fanout *fo = fanout__new(&o);
	double med;

	if (!fo || !per) {
		fprintf(stderr, "bench_fanout: out of memory\n");
		exit(1);
	}
	memset(rd, 0, sizeof(rd));
	for (unsigned i = 0; i < k; i++) {
		struct fanout_sub sub = { .name = "bench", .ring_bytes = RING_BYTES };
		size_t rb, replayed;
		uint32_t id;
		int fds[4], ret = fanout__attach(fo, &sub, &id, fds, &rb, &replayed);

		if (ret) {
			fprintf(stderr, "bench_fanout: attach: %s\n", strerror(-ret));
			exit(1);
		}
		rd[i].ring = ring_cons__new(fds[0], fds[1], fds[2]);
		if (!rd[i].ring) {
			perror("bench_fanout: ring_cons__new");
			exit(1);
		}
		ret = pthread_create(&rd[i].t, NULL, read_loop, &rd[i]);
		if (ret) {
			fprintf(stderr, "bench_fanout: pthread_create: %s\n", strerror(ret));
			exit(1);
		}
	}
	memset(&ev, 0, sizeof(ev));
	ev.event_type = KMON_EV_MEMORY_ALLOC;
	ev.version = KMON_EVENT_VERSION;
	for (unsigned r = 0; r < rounds; r++) {
		uint64_t t0 = thread_ns();

		for (unsigned i = 0; i < ROUND_EVENTS; i++) {
			ev.timestamp = seq++;
			ev.pid = (uint32_t)seq;
			ev.size = seq & 4095;
			fanout__publish(fo, &ev);
			if ((i + 1) % BATCH == 0)
				fanout__flush(fo);
		}
		fanout__flush(fo);
		per[r] = thread_ns() - t0;
		/* Let the readers empty their rings before the next round. */
		for (unsigned i = 0; i < k; i++)
			while (atomic_load(&rd[i].events) < seq) {
				struct timespec ms = { 0, 1000000 };
				nanosleep(&ms, NULL);
			}
	}
	for (unsigned i = 0; i < k; i++) {
		atomic_store(&rd[i].stop, true);
		pthread_join(rd[i].t, NULL);
		ring_cons__free(rd[i].ring);
	}
	{
		struct fanout_consumer_stats st[MAX_CONS];
		unsigned n = fanout__consumer_stats(fo, st, MAX_CONS);

		for (unsigned i = 0; i < n && i < MAX_CONS; i++) {
			lost += st[i].lost;
			wakeups += st[i].wakeups;
		}
	}
	fanout__free(fo);
	qsort(per, rounds, sizeof(*per), cmp_u64);
	med = (double)per[rounds / 2] / ROUND_EVENTS;
	free(per);
	*lost_out = lost;
	*wakeups_out = wakeups;
	return med;
}

/* A plain copy of the same records into a buffer of a ring's size. */
static double memcpy_ns(unsigned rounds)
{
	uint8_t *buf = malloc(RING_BYTES);
	uint32_t rec = kmon_rec_size(sizeof(struct kmon_event));
	struct kmon_event ev;
	uint64_t *per = calloc(rounds, sizeof(*per)), off = 0;
	double med;

	if (!buf || !per) {
		fprintf(stderr, "bench_fanout: out of memory\n");
		exit(1);
	}
	memset(buf, 0, RING_BYTES);
	memset(&ev, 0, sizeof(ev));
	for (unsigned r = 0; r < rounds; r++) {
		uint64_t t0 = thread_ns();

		for (unsigned i = 0; i < ROUND_EVENTS; i++) {
			ev.timestamp = off;
			memcpy(buf + off + 16, &ev, sizeof(ev));
			off += rec;
			if (off + 16 + sizeof(ev) > RING_BYTES)
				off = 0;
		}
		/* The copies must happen, as into shared memory. */
		__asm__ volatile("" : : "r"(buf) : "memory");
		per[r] = thread_ns() - t0;
	}
	qsort(per, rounds, sizeof(*per), cmp_u64);
	med = (double)per[rounds / 2] / ROUND_EVENTS;
	free(per);
	free(buf);
	return med;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct attacher {
	pthread_t t;
	struct fanout *fo;
	_Atomic bool stop;
	uint64_t attaches, replayed;
};

/* The control thread's part: attach with 8 MiB of replay, detach, again. */
static void *attach_loop(void *arg)
{
	struct attacher *at = arg;

	while (!atomic_load(&at->stop)) {
		struct fanout_sub sub = { .name = "late", .ring_bytes = RING_BYTES,
					  .replay_bytes = 8u << 20 };
		size_t rb, replayed;
		uint32_t id;
		int fds[4], ret = fanout__attach(at->fo, &sub, &id, fds, &rb, &replayed);

		if (ret) {
			fprintf(stderr, "bench_fanout: attach: %s\n", strerror(-ret));
			exit(1);
		}
		at->attaches++;
		at->replayed += replayed;
		if (fanout__detach(at->fo, id, NULL)) {
			fprintf(stderr, "bench_fanout: detach failed\n");
			exit(1);
		}
	}
	return NULL;
}

struct stall {
	uint64_t max_ns, p999_ns, batches, attaches;
	uint64_t max_blocked_ns;   /* longest wait that slept on the lock */
	uint64_t max_preempted_ns; /* longest wait the scheduler took the CPU in */
	double replayed_mib;
};

static void switches(uint64_t *vol, uint64_t *invol)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru)) {
		perror("bench_fanout: getrusage");
		exit(1);
	}
	*vol = (uint64_t)ru.ru_nvcsw;
	*invol = (uint64_t)ru.ru_nivcsw;
}

static struct stall run_attach(double secs, bool attaching)
{
	struct fanout_opts o = { .sz = sizeof(o), .max_consumers = MAX_CONS,
				 .default_ring_bytes = RING_BYTES, .max_ring_bytes = RING_BYTES,
				 .history_bytes = 8u << 20 };
	struct fanout *fo = fanout__new(&o);
	struct fanout_sub sub = { .name = "live", .ring_bytes = RING_BYTES };
	struct attacher at;
	struct reader rd;
	struct kmon_event ev;
	struct stall st = { 0 };
	size_t cap = (size_t)(secs * 1e6 / BATCH) + 16, n = 0, rb, replayed;
	uint64_t *waits = calloc(cap, sizeof(*waits)), seq = 0, end;
	struct timespec pace = { 0, 200000 }; /* 256 events per ~250 us */
	uint32_t id;
	int fds[4], ret;

	if (!fo || !waits) {
		fprintf(stderr, "bench_fanout: out of memory\n");
		exit(1);
	}
	memset(&rd, 0, sizeof(rd));
	memset(&at, 0, sizeof(at));
	ret = fanout__attach(fo, &sub, &id, fds, &rb, &replayed);
	if (ret) {
		fprintf(stderr, "bench_fanout: attach: %s\n", strerror(-ret));
		exit(1);
	}
	rd.ring = ring_cons__new(fds[0], fds[1], fds[2]);
	if (!rd.ring || pthread_create(&rd.t, NULL, read_loop, &rd)) {
		fprintf(stderr, "bench_fanout: reader: %s\n", strerror(errno));
		exit(1);
	}
	memset(&ev, 0, sizeof(ev));
	ev.event_type = KMON_EV_MEMORY_ALLOC;
	ev.version = KMON_EVENT_VERSION;
	/* A full history first: every attach replays 8 MiB. */
	for (unsigned i = 0; i < (8u << 20) / sizeof(ev) + BATCH; i++) {
		ev.timestamp = seq++;
		fanout__publish(fo, &ev);
		if ((i + 1) % BATCH == 0)
			fanout__flush(fo);
	}
	fanout__flush(fo);
	at.fo = fo;
	if (attaching && pthread_create(&at.t, NULL, attach_loop, &at)) {
		fprintf(stderr, "bench_fanout: pthread_create failed\n");
		exit(1);
	}
	end = mono_ns() + (uint64_t)(secs * 1e9);
	while (n < cap && mono_ns() < end) {
		uint64_t t0, w, v0, i0, v1, i1;

		ev.timestamp = seq++;
		switches(&v0, &i0);
		t0 = mono_ns();
		fanout__publish(fo, &ev);
		w = mono_ns() - t0;
		switches(&v1, &i1);
		waits[n++] = w;
		/* A voluntary switch inside the call is a sleep on the lock; an
		 * involuntary one is the scheduler's doing, not the fan-out's. */
		if (v1 != v0 && w > st.max_blocked_ns)
			st.max_blocked_ns = w;
		if (i1 != i0 && w > st.max_preempted_ns)
			st.max_preempted_ns = w;
		for (unsigned i = 1; i < BATCH; i++) {
			ev.timestamp = seq++;
			fanout__publish(fo, &ev);
		}
		fanout__flush(fo);
		nanosleep(&pace, NULL);
	}
	if (attaching) {
		atomic_store(&at.stop, true);
		pthread_join(at.t, NULL);
	}
	atomic_store(&rd.stop, true);
	pthread_join(rd.t, NULL);
	ring_cons__free(rd.ring);
	fanout__free(fo);
	qsort(waits, n, sizeof(*waits), cmp_u64);
	st.batches = n;
	st.max_ns = n ? waits[n - 1] : 0;
	st.p999_ns = n ? waits[n - 1 - n / 1000] : 0;
	st.attaches = at.attaches;
	st.replayed_mib = at.attaches ? (double)at.replayed / at.attaches / (1 << 20) : 0;
	free(waits);
	return st;
}

static int main_attach(int argc, char **argv)
{
	double secs = argc > 2 ? strtod(argv[2], NULL) : 5;
	struct stall s[2];

	if (!(secs > 0 && secs <= 3600)) {
		fprintf(stderr, "usage: bench_fanout attach [SECONDS 0..3600]\n");
		return 2;
	}
	s[0] = run_attach(secs, false);
	s[1] = run_attach(secs, true);
	printf("| attaching | batches | longest lock wait us | p99.9 us | longest asleep on the "
	       "lock us | longest preempted us | attaches | replayed MiB per attach |\n"
	       "|---|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < 2; i++)
		printf("| %s | %llu | %.1f | %.1f | %.1f | %.1f | %llu | %.2f |\n", i ? "yes" : "no",
		       (unsigned long long)s[i].batches, s[i].max_ns / 1e3, s[i].p999_ns / 1e3,
		       s[i].max_blocked_ns / 1e3, s[i].max_preempted_ns / 1e3,
		       (unsigned long long)s[i].attaches, s[i].replayed_mib);
	printf("{\"rows\":[");
	for (int i = 0; i < 2; i++)
		printf("%s{\"attaching\":%s,\"batches\":%llu,\"max_lock_wait_us\":%.1f,"
		       "\"p999_lock_wait_us\":%.1f,\"max_asleep_on_lock_us\":%.1f,"
		       "\"max_preempted_us\":%.1f,\"attaches\":%llu,"
		       "\"replayed_mib_per_attach\":%.2f}",
		       i ? "," : "", i ? "true" : "false", (unsigned long long)s[i].batches,
		       s[i].max_ns / 1e3, s[i].p999_ns / 1e3, s[i].max_blocked_ns / 1e3,
		       s[i].max_preempted_ns / 1e3, (unsigned long long)s[i].attaches,
		       s[i].replayed_mib);
	printf("]}\n");
	return 0;
}

int main(int argc, char **argv)
{
	static const unsigned ks[] = { 0, 1, 2, 4 };
	unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 30;
	double base = 0, mc, ns[4];
	uint64_t lost[4], wakeups[4];

	if (argc > 1 && !strcmp(argv[1], "attach"))
		return main_attach(argc, argv);
	if (rounds < 1 || rounds > 100000) {
		fprintf(stderr, "usage: bench_fanout [ROUNDS 1..100000]\n");
		return 2;
	}
	mc = memcpy_ns(rounds);
	printf("| consumers | drain ns/event | ns per copy | copy vs memcpy | lost | "
	       "copies per wake-up |\n|---|---|---|---|---|---|\n");
	for (unsigned i = 0; i < 4; i++) {
		ns[i] = run(ks[i], rounds, &lost[i], &wakeups[i]);
		if (!i)
			base = ns[0];
		printf("| %u | %.1f | %.1f | %.2f | %llu | %.0f |\n", ks[i], ns[i],
		       ks[i] ? (ns[i] - base) / ks[i] : 0.0,
		       ks[i] ? (ns[i] - base) / ks[i] / mc : 0.0, (unsigned long long)lost[i],
		       wakeups[i] ? (double)ks[i] * rounds * ROUND_EVENTS / (double)wakeups[i] : 0.0);
	}
	printf("{\"memcpy_ns_per_record\":%.1f,\"rows\":[", mc);
	for (unsigned i = 0; i < 4; i++)
		printf("%s{\"consumers\":%u,\"drain_ns_per_event\":%.1f,\"ns_per_copy\":%.1f,"
		       "\"copy_vs_memcpy\":%.2f,\"lost\":%llu,\"copies_per_wakeup\":%.0f}",
		       i ? "," : "", ks[i], ns[i], ks[i] ? (ns[i] - base) / ks[i] : 0.0,
		       ks[i] ? (ns[i] - base) / ks[i] / mc : 0.0, (unsigned long long)lost[i],
		       wakeups[i] ? (double)ks[i] * rounds * ROUND_EVENTS / (double)wakeups[i] : 0.0);
	printf("]}\n");
	return 0;
}
