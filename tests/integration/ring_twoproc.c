// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The shm ring between two processes (fork; the child maps the descriptors
 * it inherits, as a consumer does with those it receives).
 *
 *   ring_twoproc check N SIZE     N records of SIZE bytes, each filled from a
 *                                 counter; the consumer verifies every byte and
 *                                 the sequence, and both sides compare a
 *                                 checksum. Exit 0 only when all N arrived intact.
 *   ring_twoproc bench N          throughput for 64/108/256-byte records vs a
 *                                 plain memcpy of the same bytes, and one-way
 *                                 latency p50/p99 spinning and sleeping on the
 *                                 eventfd. Prints a table and a JSON line.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/ring.h"

#define BATCH 64

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct shared_result {
	uint64_t received, checksum, bad, wakeups, lost_wakeups;
	uint64_t lat[100000];
	uint64_t n_lat;
};

static void fill(uint8_t *p, uint32_t n, uint64_t seq)
{
	uint32_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t v = seq * 0x9e3779b97f4a7c15ull + i;
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)(seq + i);
}

/* Consumer side: verify = check every byte; latency = payload starts with
 * the producer's send time; sleep = use the eventfd when empty. */
static void consume(struct ring_cons *c, uint64_t n, uint32_t payload, bool verify,
		    bool latency, bool sleep, struct shared_result *res)
{
	uint8_t expect[4096];
	uint64_t got = 0, sum = 0;
	bool bad;

	while (got < n) {
		const struct kmon_rec_hdr *h = ring_cons__peek(c, &bad);
		if (bad) {
			res->bad++;
			break;
		}
		if (!h) {
			ring_cons__release(c);
			if (sleep && ring_cons__prepare_sleep(c)) {
				struct pollfd p = { .fd = ring_cons__eventfd(c), .events = POLLIN };
				/* A timeout with records waiting is a lost wake-up: the
				 * producer published without seeing us asleep. */
				if (poll(&p, 1, 1000) == 0 && ring_cons__pending(c))
					res->lost_wakeups++;
				res->wakeups++;
				ring_cons__wake(c);
			} else if (sleep) {
				ring_cons__wake(c);
			}
			continue;
		}
		if (h->seq != got)
			res->bad++;
		if (latency && res->n_lat < 100000) {
			uint64_t t;
			memcpy(&t, h + 1, 8);
			res->lat[res->n_lat++] = now_ns() - t;
		} else if (verify) {
			fill(expect, payload, got);
			if (memcmp(expect, h + 1, payload))
				res->bad++;
		}
		sum = sum * 31 + h->seq + ((const uint8_t *)(h + 1))[payload - 1];
		ring_cons__advance(c, h);
		got++;
		if ((got & (BATCH - 1)) == 0)
			ring_cons__release(c);
	}
	ring_cons__release(c);
	res->received = got;
	res->checksum = sum;
}

/* Producer: returns the checksum of what it wrote. pace_ns > 0 publishes
 * each record alone, that far apart (latency runs). */
static uint64_t produce(struct ring_prod *p, uint64_t n, uint32_t payload, bool latency,
			bool verify, uint64_t pace_ns)
{
	uint32_t len = kmon_rec_size(payload);
	uint64_t seq = 0, sum = 0, next = now_ns();
	bool bad;
	uint8_t tmp[4096];

	fill(tmp, payload, 0);
	while (seq < n) {
		struct kmon_rec_hdr *h;
		if (pace_ns) {
			while (now_ns() < next)
				;
			next += pace_ns;
		}
		h = ring_prod__reserve(p, len, &bad);
		if (!h) {
			ring_prod__publish(p);
			continue; /* full: the consumer keeps up, spin */
		}
		h->type = KMON_REC_RAW;
		h->flags = 0;
		h->seq = seq;
		if (latency) {
			uint64_t t = now_ns();
			memcpy(h + 1, &t, 8);
			memset((uint8_t *)(h + 1) + 8, 0, payload - 8);
		} else if (verify) {
			fill((uint8_t *)(h + 1), payload, seq);
		} else {
			/* As the agent does: copy a prepared record. */
			memcpy(h + 1, tmp, payload);
		}
		sum = sum * 31 + seq + ((uint8_t *)(h + 1))[payload - 1];
		ring_prod__commit(p, h);
		seq++;
		if (pace_ns || (seq & (BATCH - 1)) == 0)
			ring_prod__publish(p);
	}
	ring_prod__publish(p);
	return sum;
}

struct run {
	double secs;
	uint64_t received, bad, wakeups, lost_wakeups;
	bool sum_ok;
	uint64_t p50, p99;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int run_pair(uint64_t n, uint32_t payload, bool verify, bool latency, bool sleep,
		    uint64_t pace_ns, size_t ring_bytes, struct run *out)
{
	struct ring_prod *p = ring_prod__new(ring_bytes, "twoproc");
	struct shared_result *res;
	int dfd, cfd, efd, st;
	uint64_t t0, sum;
	pid_t pid;

	if (!p)
		return -1;
	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return -1;
	memset(res, 0, sizeof(*res));
	ring_prod__consumer_fds(p, &dfd, &cfd, &efd);
	t0 = now_ns();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct ring_cons *c = ring_cons__new(dfd, cfd, efd);
		if (!c)
			_exit(3);
		consume(c, n, payload, verify, latency, sleep, res);
		_exit(0);
	}
	sum = produce(p, n, payload, latency, verify, pace_ns);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	out->secs = (double)(now_ns() - t0) / 1e9;
	out->received = res->received;
	out->bad = res->bad;
	out->wakeups = res->wakeups;
	out->lost_wakeups = res->lost_wakeups;
	out->sum_ok = res->checksum == sum;
	if (latency && res->n_lat) {
		qsort(res->lat, res->n_lat, sizeof(uint64_t), cmp_u64);
		out->p50 = res->lat[res->n_lat / 2];
		out->p99 = res->lat[res->n_lat * 99 / 100];
	}
	munmap(res, sizeof(*res));
	ring_prod__free(p);
	return 0;
}

/* The baseline: the same bytes memcpy'd record by record in one process,
 * from a source as large as the ring into a sink as large as the ring. */
static double memcpy_rate(uint64_t n, uint32_t rec, size_t ring_bytes)
{
	uint8_t *src = malloc(ring_bytes), *dst = malloc(ring_bytes);
	uint64_t i, off = 0, t0;
	volatile uint8_t sink = 0;
	double secs;

	if (!src || !dst)
		return 0;
	memset(src, 1, ring_bytes);
	memset(dst, 0, ring_bytes);
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		memcpy(dst + off, src + off, rec);
		off += rec;
		if (off + rec > ring_bytes)
			off = 0;
	}
	sink = dst[n % ring_bytes];
	(void)sink;
	secs = (double)(now_ns() - t0) / 1e9;
	free(src);
	free(dst);
	return (double)n / secs;
}

static int bench(uint64_t n)
{
	static const uint32_t sizes[] = { 64, 108, 256 };
	struct run r, ls, lw;
	unsigned i;

	printf("%-8s %14s %12s %14s %10s\n", "record", "ring rec/s", "ring MB/s", "memcpy rec/s",
	       "ratio");
	printf("{\"bench\":\"shm_ring\",\"throughput\":[");
	fflush(stdout);
	for (i = 0; i < 3; i++) {
		/* Records of `sizes[i]` bytes in the ring: header included. */
		uint32_t payload = sizes[i] - (uint32_t)sizeof(struct kmon_rec_hdr);
		double mrate, rrate;
		if (run_pair(n, payload, false, false, false, 0, 4u << 20, &r) || !r.sum_ok)
			return 1;
		rrate = (double)r.received / r.secs;
		mrate = memcpy_rate(n, sizes[i], 4u << 20);
		fprintf(stderr, "%-8u %14.0f %12.1f %14.0f %10.3f\n", sizes[i], rrate,
			rrate * sizes[i] / 1e6, mrate, rrate / mrate);
		printf("%s{\"record_bytes\":%u,\"ring_rps\":%.0f,\"memcpy_rps\":%.0f,\"ratio\":%.4f}",
		       i ? "," : "", sizes[i], rrate, mrate, rrate / mrate);
	}
	if (run_pair(20000, 108, false, true, false, 20000, 4u << 20, &ls) ||
	    run_pair(20000, 108, false, true, true, 20000, 4u << 20, &lw))
		return 1;
	printf("],\"latency_ns\":{\"spin_p50\":%" PRIu64 ",\"spin_p99\":%" PRIu64
	       ",\"sleep_p50\":%" PRIu64 ",\"sleep_p99\":%" PRIu64 ",\"sleep_wakeups\":%" PRIu64
	       "}}\n", ls.p50, ls.p99, lw.p50, lw.p99, lw.wakeups);
	fprintf(stderr, "latency 108B one-way: spin p50 %" PRIu64 " ns p99 %" PRIu64
		" ns; eventfd sleep p50 %" PRIu64 " ns p99 %" PRIu64 " ns\n", ls.p50, ls.p99,
		lw.p50, lw.p99);
	return 0;
}

int main(int argc, char **argv)
{
	struct run r;

	if (argc >= 4 && !strcmp(argv[1], "check")) {
		uint64_t n = strtoull(argv[2], NULL, 10);
		uint32_t size = (uint32_t)strtoul(argv[3], NULL, 10);
		bool sleep = argc > 4 && !strcmp(argv[4], "sleep");
		if (run_pair(n, size, true, false, sleep, 0, 1u << 20, &r)) {
			fprintf(stderr, "ring_twoproc: run failed\n");
			return 1;
		}
		printf("{\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"bad\":%" PRIu64
		       ",\"checksum_ok\":%s,\"wakeups\":%" PRIu64 ",\"lost_wakeups\":%" PRIu64
		       ",\"secs\":%.3f}\n",
		       n, r.received, r.bad, r.sum_ok ? "true" : "false", r.wakeups, r.lost_wakeups,
		       r.secs);
		return (r.received == n && !r.bad && r.sum_ok && !r.lost_wakeups) ? 0 : 1;
	}
	if (argc >= 4 && !strcmp(argv[1], "paced")) {
		/* N records at RATE/s, each published alone; the consumer sleeps
		 * on the eventfd whenever the ring is empty. */
		uint64_t n = strtoull(argv[2], NULL, 10), rate = strtoull(argv[3], NULL, 10);
		if (!rate || run_pair(n, 92, false, true, true, 1000000000ull / rate, 1u << 20, &r))
			return 1;
		printf("{\"records\":%" PRIu64 ",\"wakeups\":%" PRIu64 ",\"wakeups_per_record\":%.4f,"
		       "\"lost_wakeups\":%" PRIu64 ",\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 "}\n",
		       r.received, r.wakeups, (double)r.wakeups / (double)(r.received ? r.received : 1),
		       r.lost_wakeups, r.p50, r.p99);
		return r.received == n ? 0 : 1;
	}
	if (argc >= 2 && !strcmp(argv[1], "bench"))
		return bench(argc > 2 ? strtoull(argv[2], NULL, 10) : 20000000ull);
	fprintf(stderr, "usage: ring_twoproc check N SIZE [sleep] | bench [N]\n");
	return 2;
}
