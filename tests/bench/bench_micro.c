// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Consumer ceilings on synthetic events, in one process:
 *   json      event_json__write per event
 *   gzip      zlib (level 1, as kmon-forward) over those JSON lines alone
 *   forward   json + gzip: kmon-forward's work per event before the network
 *   aggregate aggtable__add per event (100 containers, exec and memory mix)
 * Prints one JSON line with ns per event for each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "consumers/aggregate/aggtable.h"
#include "shm/common/event_json.h"
#include "shm/meta.h"

#define N 400000

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double gzip_all(const char *buf, size_t len)
{
	size_t cap = compressBound((uLong)len) + 64;
	char *out = malloc(cap);
	double t0 = now();
	size_t off = 0;

	/* 1 MiB batches, as kmon-forward sends them. */
	while (off < len) {
		size_t chunk = len - off < (1u << 20) ? len - off : (1u << 20);
		z_stream z;
		memset(&z, 0, sizeof(z));
		deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
		z.next_in = (Bytef *)buf + off;
		z.avail_in = (uInt)chunk;
		z.next_out = (Bytef *)out;
		z.avail_out = (uInt)cap;
		deflate(&z, Z_FINISH);
		deflateEnd(&z);
		off += chunk;
	}
	free(out);
	return now() - t0;
}

int main(void)
{
	static struct kmon_meta metas[100];
	struct kmon_event *evs = calloc(N, sizeof(*evs));
	char *lines = malloc((size_t)N * 600);
	struct aggtable *t = aggtable__new(1000, 5);
	size_t len = 0, len2;
	static char warm[65536 + 600];
	double t0, t_json, t_gzip, t_agg;
	int i;

	if (!evs || !lines || !t)
		return 1;
	for (i = 0; i < 100; i++) {
		metas[i].key = (uint32_t)i + 1;
		snprintf(metas[i].container_id, sizeof(metas[i].container_id), "%064d", i);
		snprintf(metas[i].pod_uid, sizeof(metas[i].pod_uid), "e3f7128c-3555-427e-a507-%012d", i);
		snprintf(metas[i].pod, sizeof(metas[i].pod), "checkout-7d9f8b6c5-%05d", i);
		snprintf(metas[i].namespace, sizeof(metas[i].namespace), "ns-%d", i % 10);
		snprintf(metas[i].container, sizeof(metas[i].container), "app");
	}
	for (i = 0; i < N; i++) {
		struct kmon_event *e = &evs[i];
		e->timestamp = 1000000000ull * 3600 + (uint64_t)i * 1000;
		e->pid = 1000 + (uint32_t)(i % 500);
		e->tid = e->pid;
		e->event_type = i % 10 == 0 ? KMON_EV_PROCESS_EXEC : 1 + (uint32_t)(i & 1);
		e->size = 64u << (i % 6);
		e->flags = KMON_EVF_SIZE_KNOWN;
		memcpy(e->comm, "worker", 6);
		if (e->event_type == KMON_EV_PROCESS_EXEC)
			snprintf(e->data.filename, sizeof(e->data.filename), "/usr/bin/tool%d", i % 7);
		else {
			e->data.mem.ptr = 0xffff888100000000ull + (uint64_t)i * 64;
			e->data.mem.call_site = 0xffffffff81234567ull;
		}
		e->container_key = (uint32_t)(i % 100) + 1;
	}
	/* The JSON for gzip, then the encoder timed into a small reused
	 * buffer (as kmon-forward's batch buffer stays warm). */
	for (i = 0; i < N; i++) {
		int n = event_json__write(lines + len, 600, &evs[i], &metas[evs[i].container_key - 1],
					  "worker-1", 0);
		if (n < 0)
			return 1;
		len += (size_t)n;
	}
	t0 = now();
	for (i = 0, len2 = 0; i < N; i++) {
		int n = event_json__write(warm + (len2 & 0xffff), 600, &evs[i],
					  &metas[evs[i].container_key - 1], "worker-1", 0);
		len2 += (size_t)n;
	}
	t_json = now() - t0;
	t_gzip = gzip_all(lines, len);
	t0 = now();
	for (i = 0; i < N; i++)
		aggtable__add(t, &evs[i], &metas[evs[i].container_key - 1], 1.0);
	t_agg = now() - t0;
	printf("{\"events\":%d,\"json_bytes_per_event\":%.0f,\"json_ns\":%.1f,\"gzip_ns\":%.1f,"
	       "\"forward_ns\":%.1f,\"forward_vs_zlib_only\":%.3f,\"aggregate_ns\":%.1f}\n",
	       N, (double)len / N, t_json / N * 1e9, t_gzip / N * 1e9, (t_json + t_gzip) / N * 1e9,
	       t_gzip / (t_json + t_gzip), t_agg / N * 1e9);
	aggtable__free(t);
	free(lines);
	free(evs);
	return 0;
}
