// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Consumer ceilings on synthetic events, in one process:
 *   json_ref  the event JSON encoder before issue 18 (tests/support), the baseline
 *   json      event_json__write per event (no cache)
 *   json_cached event_json__write_cached (kmon-forward's path: 100 containers)
 *   gzip      zlib (level 1, as kmon-forward had it) over those JSON lines alone
 *   gzip1, zstd1, zstd3: kmon-forward's codecs (compress.c: gzip level 1 is ISA-L's
 *             igzip, zstd levels 1 and 3) over the
 *             same 1 MiB batches, with the compressed bytes per event
 *   forward   json_cached + the default codec (gzip level 1): kmon-forward's
 *             work per event before the network
 *   aggregate aggtable__add per event (100 containers, exec and memory mix)
 * Each encoder and codec is timed in alternating rounds, side by side; the
 * median round is reported with the spread (min..max) over rounds.
 * Prints one JSON line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "consumers/aggregate/aggtable.h"
#include "consumers/forward/compress.h"
#include "shm/common/event_json.h"
#include "shm/meta.h"
#include "tests/support/event_json_ref.h"

#define N 400000

static double now(void)
{
	struct timespec ts;

	/* CPU time of this thread: the machine is shared, wall time would count
	 * the neighbours. */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

#define ROUNDS 7

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct series {
	double v[ROUNDS];
	int n;
};

static double med(struct series *s)
{
	double t[ROUNDS];

	memcpy(t, s->v, sizeof(t));
	qsort(t, (size_t)s->n, sizeof(double), cmp_d);
	return t[s->n / 2];
}

static double lo(struct series *s)
{
	double m = s->v[0];

	for (int i = 1; i < s->n; i++)
		m = s->v[i] < m ? s->v[i] : m;
	return m;
}

static double hi(struct series *s)
{
	double m = s->v[0];

	for (int i = 1; i < s->n; i++)
		m = s->v[i] > m ? s->v[i] : m;
	return m;
}

/* Seconds a codec takes over buf in 1 MiB batches (as kmon-forward seals
 * them); *out_bytes: compressed total. */
static double codec_all(struct compressor *z, const char *buf, size_t len, size_t *out_bytes)
{
	double t0 = now();
	size_t off = 0;

	*out_bytes = 0;
	while (off < len) {
		size_t chunk = len - off < (1u << 20) ? len - off : (1u << 20);
		char *out;
		size_t n;

		if (compressor__compress(z, buf + off, chunk, &out, &n))
			exit(1);
		*out_bytes += n;
		free(out);
		off += chunk;
	}
	return now() - t0;
}

static size_t zlib_bytes(const char *buf, size_t len)
{
	size_t cap = compressBound((uLong)len) + 64, total = 0, off = 0;
	char *out = malloc(cap);

	while (out && off < len) {
		size_t chunk = len - off < (1u << 20) ? len - off : (1u << 20);
		uLongf n = (uLongf)cap;

		if (compress2((Bytef *)out, &n, (const Bytef *)buf + off, (uLong)chunk, 1) != Z_OK)
			exit(1);
		total += n;
		off += chunk;
	}
	free(out);
	return total;
}

int main(void)
{
	static struct kmon_meta metas[100];
	struct kmon_event *evs = calloc(N, sizeof(*evs));
	char *lines = malloc((size_t)N * 600);
	struct aggtable *t = aggtable__new(1000, 5);
	size_t len = 0, len2;
	static char warm[65536 + KMON_EVENT_JSON_MAX];
	double t0, t_agg;
	struct series s_ref = { 0 }, s_json = { 0 }, s_cached = { 0 }, s_zlib = { 0 },
		      s_gz = { 0 }, s_z1 = { 0 }, s_z3 = { 0 };
	struct event_json_cache *cache = event_json_cache__new(512);
	struct compressor *gz = compressor__new(COMPRESS_GZIP, 1);
	struct compressor *z1 = compressor__new(COMPRESS_ZSTD, 1);
	struct compressor *z3 = compressor__new(COMPRESS_ZSTD, 3);
	size_t b_gz = 0, b_z1 = 0, b_z3 = 0, b_zlib;
	int i, r;

	if (!evs || !lines || !t || !cache || !gz || !z1 || !z3)
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
	/* Rounds alternate the encoders and codecs so a noisy neighbour hits
	 * them alike. The line buffer is KMON_EVENT_JSON_MAX, as kmon-forward's. */
	for (r = 0; r < ROUNDS; r++) {
		t0 = now();
		for (i = 0, len2 = 0; i < N; i++) {
			int n = event_json_ref__write(warm + (len2 & 0xffff), KMON_EVENT_JSON_MAX,
						      &evs[i], &metas[evs[i].container_key - 1],
						      "worker-1", 0);
			len2 += (size_t)n;
		}
		s_ref.v[s_ref.n++] = (now() - t0) / N * 1e9;
		t0 = now();
		for (i = 0, len2 = 0; i < N; i++) {
			int n = event_json__write(warm + (len2 & 0xffff), KMON_EVENT_JSON_MAX,
						  &evs[i], &metas[evs[i].container_key - 1],
						  "worker-1", 0);
			len2 += (size_t)n;
		}
		s_json.v[s_json.n++] = (now() - t0) / N * 1e9;
		t0 = now();
		for (i = 0, len2 = 0; i < N; i++) {
			int n = event_json__write_cached(cache, warm + (len2 & 0xffff),
							 KMON_EVENT_JSON_MAX, &evs[i],
							 &metas[evs[i].container_key - 1],
							 "worker-1", 0, NULL);
			len2 += (size_t)n;
		}
		s_cached.v[s_cached.n++] = (now() - t0) / N * 1e9;
		if (r >= 3) /* the codecs take longer: fewer rounds */
			continue;
		s_zlib.v[s_zlib.n++] = gzip_all(lines, len) / N * 1e9;
		s_gz.v[s_gz.n++] = codec_all(gz, lines, len, &b_gz) / N * 1e9;
		s_z1.v[s_z1.n++] = codec_all(z1, lines, len, &b_z1) / N * 1e9;
		s_z3.v[s_z3.n++] = codec_all(z3, lines, len, &b_z3) / N * 1e9;
	}
	b_zlib = zlib_bytes(lines, len);
	t0 = now();
	for (i = 0; i < N; i++)
		aggtable__add(t, &evs[i], &metas[evs[i].container_key - 1], 1.0);
	t_agg = now() - t0;
#define SER(name, s) "\"" name "_ns\":%.1f,\"" name "_spread\":\"%.1f..%.1f\","
#define SARGS(s) med(&s), lo(&s), hi(&s)
	printf("{\"events\":%d,\"json_bytes_per_event\":%.0f," SER("json_ref", s_ref)
	       SER("json", s_json) SER("json_cached", s_cached)
	       "\"json_cached_vs_ref\":%.3f," SER("gzip", s_zlib) SER("gzip1", s_gz)
	       SER("zstd1", s_z1) SER("zstd3", s_z3)
	       "\"zlib_bytes_per_event\":%.1f,\"gzip1_bytes_per_event\":%.1f,"
	       "\"zstd1_bytes_per_event\":%.1f,\"zstd3_bytes_per_event\":%.1f,"
	       "\"gzip1_vs_zlib_time\":%.3f,\"zstd1_vs_zlib_time\":%.3f,"
	       "\"forward_ns\":%.1f,\"forward_ref_ns\":%.1f,\"forward_vs_ref\":%.3f,"
	       "\"aggregate_ns\":%.1f}\n",
	       N, (double)len / N, SARGS(s_ref), SARGS(s_json), SARGS(s_cached),
	       med(&s_cached) / med(&s_ref), SARGS(s_zlib), SARGS(s_gz), SARGS(s_z1), SARGS(s_z3),
	       (double)b_zlib / N, (double)b_gz / N, (double)b_z1 / N, (double)b_z3 / N,
	       med(&s_gz) / med(&s_zlib), med(&s_z1) / med(&s_zlib),
	       med(&s_cached) + med(&s_gz), med(&s_ref) + med(&s_zlib),
	       (med(&s_cached) + med(&s_gz)) / (med(&s_ref) + med(&s_zlib)), t_agg / N * 1e9);
	compressor__free(gz);
	compressor__free(z1);
	compressor__free(z3);
	event_json_cache__free(cache);
	aggtable__free(t);
	free(lines);
	free(evs);
	return 0;
}
