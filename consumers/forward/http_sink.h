/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * NDJSON batches POSTed to an HTTP(S) endpoint (ClickHouse's HTTP interface,
 * Vector, Loki-style gateways...). libcurl's multi interface runs on the
 * caller's libuv loop, so no call blocks the loop.
 *
 * Lines gather into a batch until it reaches batch_lines or batch_bytes, or
 * flush_interval passes; the batch is then gzip-compressed (unless disabled)
 * and queued. One batch is in flight at a time, so the server sees lines in
 * order. Connection errors, 408/429 and 5xx are retried with exponential
 * backoff and jitter; other 4xx drop the batch (retrying cannot help) and say
 * why. The queue holds at most max_queue_bytes: when full, the oldest batch
 * not in flight is dropped and counted.
 */
#ifndef KMON_CONSUMERS_HTTP_SINK_H
#define KMON_CONSUMERS_HTTP_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "consumers/forward/sink.h"

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
	bool gzip;
	double close_timeout;   /* seconds to keep trying at close; default 10 */
};

struct sink *http_sink__new(const struct http_sink_opts *opts);

#endif
