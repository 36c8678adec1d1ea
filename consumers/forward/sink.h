/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Where kmon-forward writes its JSON lines. A sink takes whole lines, never
 * blocks the loop for long, and counts what it could not deliver.
 *   file_sink: stdout or a file opened for append, reopened on request
 *              (SIGHUP, for an outside logrotate), or rotated by size itself:
 *              path -> path.1 -> ... -> path.keep, optionally gzip'd off the
 *              loop thread; a rotation happens between two whole lines, so
 *              every line is in exactly one file.
 *   http_sink: NDJSON batches POSTed with libcurl's multi interface on the
 *              libuv loop (http_sink.h).
 */
#ifndef KMON_CONSUMERS_SINK_H
#define KMON_CONSUMERS_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sink_stats {
	uint64_t lines;       /* lines accepted */
	uint64_t sent;        /* lines written / acknowledged by the server */
	uint64_t batches;
	uint64_t retried;     /* batch attempts repeated */
	uint64_t dropped;     /* lines dropped (queue full, write error) */
	uint64_t dropped_batches;
	uint64_t queued_bytes;
	uint64_t rotations;     /* file: rotations done */
	uint64_t rotate_errors; /* file: rename/open/compress failures (no line lost) */
	uint64_t response_bytes; /* http: bytes of the server's answers, read and discarded */
};

struct sink {
	/* line includes its '\n'. Returns 0, or -errno when the line was dropped
	 * (and counted). */
	int (*write)(struct sink *s, const char *line, size_t len);
	/* End of a burst: make what was written visible (flush, start a POST). */
	void (*flush)(struct sink *s);
	int (*reopen)(struct sink *s);
	void (*get_stats)(struct sink *s, struct sink_stats *out);
	/* Flushes what it can (bounded time), calls done (the sink is still
	 * valid then: read its final stats), then frees itself. */
	void (*close)(struct sink *s, void (*done)(void *ctx), void *ctx);
};

struct file_sink_opts {
	size_t sz;             /* sizeof(struct file_sink_opts) */
	uint64_t rotate_bytes; /* 0: never rotate by size */
	unsigned keep;         /* rotated files kept; default 5 */
	bool gzip;             /* compress rotated files (path.N.gz) */
};

/* path "-" is stdout (no rotation: EINVAL). opts may be NULL. NULL with
 * errno on failure. */
struct sink *file_sink__new(const char *path, const struct file_sink_opts *opts);

#endif
