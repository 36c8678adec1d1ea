/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Whole-batch compression for kmon-forward's HTTP sink, one codec per sink:
 *   gzip  RFC 1952, what "Content-Encoding: gzip" means; levels 1 to 12,
 *         default 1: level 1 with ISA-L's igzip (3x libdeflate's speed at
 *         the same size on event lines), 2 to 12 with libdeflate
 *   zstd  libzstd (RFC 8878, "Content-Encoding: zstd"), levels -7 to 19,
 *         default 1; for sinks that accept it (OpenTelemetry Collector
 *         HTTP receivers, current ClickHouse; not Debian 12's ClickHouse
 *         18.16, which answers 500 "Unknown Content-Encoding")
 *   none  the batch as it is
 * The compressor keeps its state (the codec's compressor, zstd's context)
 * across batches, so a batch costs no setup; the output buffer is the
 * caller's to free.
 */
#ifndef KMON_CONSUMERS_COMPRESS_H
#define KMON_CONSUMERS_COMPRESS_H

#include <stddef.h>

enum compress_codec {
	COMPRESS_NONE = 0,
	COMPRESS_GZIP = 1,
	COMPRESS_ZSTD = 2,
};

struct compressor;

/* "gzip", "zstd", "none": 0, or -EINVAL. */
int compress__parse_codec(const char *name, enum compress_codec *out);
const char *compress__codec_name(enum compress_codec c);
/* The Content-Encoding header's value, NULL for none. */
const char *compress__content_encoding(enum compress_codec c);
/* Whether level is valid for codec (none takes only 0), and its range for
 * messages. */
int compress__level_ok(enum compress_codec c, int level);
void compress__level_range(enum compress_codec c, int *min, int *max, int *dflt);

/* level 0: the codec's default. NULL with errno (EINVAL: bad level). */
struct compressor *compressor__new(enum compress_codec c, int level);
void compressor__free(struct compressor *z);
/* Compresses len bytes of in into a new malloc'd buffer. Returns 0 with *out
 * and *out_len, or -ENOMEM / -EIO. */
int compressor__compress(struct compressor *z, const void *in, size_t len, char **out,
			 size_t *out_len);

#endif
