// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/forward/compress.h"

#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <zstd.h>

/* gzip level 1, the default, is ISA-L's igzip level 1: on kmon's event
 * lines in 1 MiB batches it took 136 ns per event against libdeflate's 457
 * at level 1, for 20.7 compressed bytes per event against 21.2 (issue 18,
 * target 4). Its higher levels are no better than libdeflate's, so levels 2
 * to 12 stay libdeflate's, for a better ratio. */
#define ISAL_LEVEL 1

/* zstd's fast levels (1 and below, ZSTD_fast: one hash table, no chain)
 * with a 2^11-entry table instead of the level's 2^13: an 8 KiB table that
 * stays in L1. kmon's lines repeat their keys and pod names within a few
 * events, so the far matches a larger table finds are worth little: on
 * 1 MiB batches of the agent's lines (pod fields filled) level 1 took 170
 * ns per event against 202, for 12.8 bytes against 13.0 (issue 18, target
 * 4). Levels 2 and up keep their own tables. */
#define ZSTD_FAST_HASH_LOG 11

struct compressor {
	enum compress_codec codec;
	int level;
	struct libdeflate_compressor *gz; /* levels 2-12, and level 1's fallback */
	struct isal_zstream *isal;        /* level 1 */
	uint8_t *isal_buf;
	ZSTD_CCtx *zs;
};

int compress__parse_codec(const char *name, enum compress_codec *out)
{
	if (!strcmp(name, "gzip"))
		*out = COMPRESS_GZIP;
	else if (!strcmp(name, "zstd"))
		*out = COMPRESS_ZSTD;
	else if (!strcmp(name, "none"))
		*out = COMPRESS_NONE;
	else
		return -EINVAL;
	return 0;
}

const char *compress__codec_name(enum compress_codec c)
{
	return c == COMPRESS_GZIP ? "gzip" : c == COMPRESS_ZSTD ? "zstd" : "none";
}

const char *compress__content_encoding(enum compress_codec c)
{
	return c == COMPRESS_NONE ? NULL : compress__codec_name(c);
}

void compress__level_range(enum compress_codec c, int *min, int *max, int *dflt)
{
	/* Level 1 by default for both: a node agent's consumer should spend
	 * little CPU; the ratio gained beyond it is small on JSON lines (see
	 * the forward benchmark). zstd's negative levels are its fast modes;
	 * beyond 19 it needs much memory per context. */
	switch (c) {
	case COMPRESS_GZIP:
		*min = 1, *max = 12, *dflt = 1;
		break;
	case COMPRESS_ZSTD:
		*min = -7, *max = 19, *dflt = 1;
		break;
	default:
		*min = *max = *dflt = 0;
	}
}

int compress__level_ok(enum compress_codec c, int level)
{
	int min, max, dflt;

	compress__level_range(c, &min, &max, &dflt);
	return level >= min && level <= max;
}

struct compressor *compressor__new(enum compress_codec c, int level)
{
	struct compressor *z;
	int min, max, dflt;

	compress__level_range(c, &min, &max, &dflt);
	if (!level)
		level = dflt;
	if (!compress__level_ok(c, level)) {
		errno = EINVAL;
		return NULL;
	}
	z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->codec = c;
	z->level = level;
	if (c == COMPRESS_GZIP && !(z->gz = libdeflate_alloc_compressor(level)))
		goto fail;
	if (c == COMPRESS_GZIP && level == 1) {
		z->isal = calloc(1, sizeof(*z->isal));
		z->isal_buf = malloc(ISAL_DEF_LVL1_DEFAULT);
		if (!z->isal || !z->isal_buf)
			goto fail;
	}
	if (c == COMPRESS_ZSTD) {
		if (!(z->zs = ZSTD_createCCtx()))
			goto fail;
		/* No content checksum: TCP and TLS already protect the body, the
		 * receivers (ClickHouse, OTLP collectors) do not ask for one, and
		 * XXH64 over every byte was 5% of the codec's time on event JSON
		 * (tests/bench, issue 18). */
		if (ZSTD_isError(ZSTD_CCtx_setParameter(z->zs, ZSTD_c_compressionLevel, level)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(z->zs, ZSTD_c_checksumFlag, 0)) ||
		    (level <= 1 && ZSTD_isError(ZSTD_CCtx_setParameter(z->zs, ZSTD_c_hashLog,
									ZSTD_FAST_HASH_LOG)))) {
			errno = EINVAL;
			compressor__free(z);
			return NULL;
		}
	}
	return z;
fail:
	compressor__free(z);
	errno = ENOMEM;
	return NULL;
}

void compressor__free(struct compressor *z)
{
	if (!z)
		return;
	if (z->gz)
		libdeflate_free_compressor(z->gz);
	free(z->isal);
	free(z->isal_buf);
	ZSTD_freeCCtx(z->zs);
	free(z);
}

/* One gzip member of in (ISA-L, stateless: no state kept between batches
 * but the level buffer); 0 when it does not fit cap or ISA-L fails. */
static size_t isal_gzip(struct compressor *z, const void *in, size_t len, char *out, size_t cap)
{
	struct isal_zstream *s = z->isal;

	if (len > UINT32_MAX || cap > UINT32_MAX)
		return 0;
	isal_deflate_stateless_init(s);
	s->level = ISAL_LEVEL;
	s->level_buf = z->isal_buf;
	s->level_buf_size = ISAL_DEF_LVL1_DEFAULT;
	s->gzip_flag = IGZIP_GZIP;
	s->end_of_stream = 1;
	s->flush = NO_FLUSH;
	s->next_in = (uint8_t *)in;
	s->avail_in = (uint32_t)len;
	s->next_out = (uint8_t *)out;
	s->avail_out = (uint32_t)cap;
	if (isal_deflate_stateless(s) != COMP_OK)
		return 0;
	return s->total_out;
}

int compressor__compress(struct compressor *z, const void *in, size_t len, char **out,
			 size_t *out_len)
{
	size_t cap, n;
	char *buf;

	switch (z->codec) {
	case COMPRESS_GZIP:
		cap = libdeflate_gzip_compress_bound(z->gz, len);
		break;
	case COMPRESS_ZSTD:
		cap = ZSTD_compressBound(len);
		break;
	default:
		cap = len;
	}
	buf = malloc(cap ? cap : 1);
	if (!buf)
		return -ENOMEM;
	switch (z->codec) {
	case COMPRESS_GZIP:
		n = z->isal ? isal_gzip(z, in, len, buf, cap) : 0;
		/* cap is libdeflate's bound, which holds for any input. igzip
		 * stays within it too (on bytes that do not compress it writes
		 * stored blocks: tests/unit/test_compress.c), but should it fail
		 * or overflow, libdeflate writes the batch rather than lose it. */
		if (!n)
			n = libdeflate_gzip_compress(z->gz, in, len, buf, cap);
		if (!n)
			goto io;
		break;
	case COMPRESS_ZSTD:
		/* One frame with the content size. */
		n = ZSTD_compress2(z->zs, buf, cap, in, len);
		if (ZSTD_isError(n))
			goto io;
		break;
	default:
		memcpy(buf, in, len);
		n = len;
	}
	*out = buf;
	*out_len = n;
	return 0;
io:
	free(buf);
	return -EIO;
}
