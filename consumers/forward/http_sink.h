/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * NDJSON batches POSTed to an HTTP(S) endpoint (ClickHouse's HTTP interface,
 * Vector, Loki-style gateways...). libcurl's multi interface runs on the
 * caller's libuv loop, so no call blocks the loop.
 *
 * Lines gather into a batch until it reaches batch_lines or batch_bytes, or
 * flush_interval passes; the batch is then compressed (gzip with libdeflate,
 * zstd, or not: compress.h) and queued. One batch is in flight at a time, so the server sees lines in
 * order. Connection errors, 408/429 and 5xx are retried with exponential
 * backoff and jitter; a 429 or 503 with Retry-After (seconds or an HTTP-date)
 * waits what it says instead, at most 60 s; other 4xx drop the batch
 * (retrying cannot help) and say why. The queue holds at most max_queue_bytes: when full, the oldest batch
 * not in flight is dropped and counted.
 */
#ifndef KMON_CONSUMERS_HTTP_SINK_H
#define KMON_CONSUMERS_HTTP_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "consumers/forward/compress.h"
#include "consumers/forward/sink.h"

/* What a batch goes out as. Without one, the lines are sent as written
 * (NDJSON). With one (OTLP), what is written are the encoder's items and the
 * encoder turns a sealed batch into the request body; compression (the
 * codec), retries, backoff and the queue bound are the same. */
struct http_sink_encoder {
	const char *content_type;
	/* n items, len bytes -> *body (malloc'd). A failure drops the batch,
	 * counted in dropped/dropped_batches. */
	int (*encode)(void *ctx, const char *items, size_t len, uint64_t n, char **body,
		      size_t *body_len);
	/* A 2xx answer's first bytes -> items the server says it rejected
	 * (OTLP partial success); NULL: none. */
	uint64_t (*rejected)(void *ctx, const char *answer, size_t len);
	void *ctx;
};

struct http_sink_opts {
	size_t sz;
	uv_loop_t *loop;
	const char *url;
	const char *const *headers; /* "Name: value" */
	unsigned n_headers;
	double flush_interval;  /* seconds */
	size_t batch_bytes;     /* uncompressed */
	unsigned batch_lines;
	size_t max_queue_bytes;
	enum compress_codec codec; /* and Content-Encoding */
	int level;                 /* 0: the codec's default */
	double close_timeout;   /* seconds to keep trying at close; default 10 */
	const struct http_sink_encoder *encoder; /* NULL: NDJSON */
};

struct sink *http_sink__new(const struct http_sink_opts *opts);

#endif
