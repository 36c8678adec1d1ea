// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kmon-forward's batch codecs (consumers/forward/compress.c), decoded by
 * zlib: gzip at level 1 (ISA-L's igzip) and at a libdeflate level, on event
 * lines and on bytes that do not compress (stored blocks, within the output
 * bound compress.c allows), give back exactly the input.
 * zstd at its fast levels (a smaller hash table than the level's own) and
 * at a higher level, decoded by libzstd, give back exactly the input too.
 * The real receivers are covered end to end by
 * tests/integration/test_forward_codecs.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "consumers/forward/compress.h"

/* gunzip with zlib (windowBits 16 + 15: a gzip member, its CRC checked). */
static void gunzip_equals(const char *gz, size_t gz_len, const char *want, size_t want_len)
{
	char *out = malloc(want_len + 16);
	z_stream s;

	assert_non_null(out);
	memset(&s, 0, sizeof(s));
	assert_int_equal(inflateInit2(&s, 16 + 15), Z_OK);
	s.next_in = (Bytef *)gz;
	s.avail_in = (uInt)gz_len;
	s.next_out = (Bytef *)out;
	s.avail_out = (uInt)(want_len + 16);
	assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
	assert_int_equal(s.total_out, want_len);
	assert_memory_equal(out, want, want_len);
	inflateEnd(&s);
	free(out);
}

static void unzstd_equals(const char *zs, size_t zs_len, const char *want, size_t want_len)
{
	char *out = malloc(want_len + 16);
	size_t n;

	assert_non_null(out);
	n = ZSTD_decompress(out, want_len + 16, zs, zs_len);
	assert_false(ZSTD_isError(n));
	assert_int_equal(n, want_len);
	assert_memory_equal(out, want, want_len);
	free(out);
}

static char *event_lines(size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap);

	assert_non_null(buf);
	for (unsigned i = 0; n + 512 < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n,
				      "{\"type\":\"memory_alloc\",\"timestamp\":%u,\"pid\":%u,"
				      "\"comm\":\"worker\",\"size\":%u,\"ptr\":\"0x%08x\","
				      "\"call_site\":\"kmalloc_trace+0x%x\",\"pod\":\"web-%u\","
				      "\"namespace\":\"shop\",\"node\":\"n1\"}\n",
				      i * 977, 1000 + i % 50, 64u << (i % 6), i * 2654435761u,
				      i % 300, i % 7);
	*len = n;
	return buf;
}

static char *noise(size_t len)
{
	char *buf = malloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift: no structure */
		buf[i] = (char)(x >> 56);
	}
	return buf;
}

typedef void (*decode_fn)(const char *z, size_t z_len, const char *want, size_t want_len);

static void round_trip(enum compress_codec codec, int level, const char *in, size_t len)
{
	decode_fn decode = codec == COMPRESS_GZIP ? gunzip_equals : unzstd_equals;
	struct compressor *z = compressor__new(codec, level);
	char *out = NULL;
	size_t n = 0;

	assert_non_null(z);
	assert_int_equal(compressor__compress(z, in, len, &out, &n), 0);
	decode(out, n, in, len);
	free(out);
	/* The same compressor again: no state carried into the next batch. */
	assert_int_equal(compressor__compress(z, in, len / 2, &out, &n), 0);
	decode(out, n, in, len / 2);
	free(out);
	compressor__free(z);
}

static void gzip_levels_on_event_lines(void **state)
{
	size_t len;
	char *in = event_lines(&len);

	(void)state;
	round_trip(COMPRESS_GZIP, 1, in, len);
	round_trip(COMPRESS_GZIP, 6, in, len);
	free(in);
}

static void gzip_on_bytes_that_do_not_compress(void **state)
{
	char *in = noise(1 << 20);

	(void)state;
	round_trip(COMPRESS_GZIP, 1, in, 1 << 20);
	round_trip(COMPRESS_GZIP, 1, in, 1); /* and the smallest batch */
	free(in);
}

static void zstd_levels_on_event_lines_and_noise(void **state)
{
	size_t len;
	char *in = event_lines(&len), *rnd = noise(1 << 20);

	(void)state;
	round_trip(COMPRESS_ZSTD, 1, in, len);
	round_trip(COMPRESS_ZSTD, -5, in, len);
	round_trip(COMPRESS_ZSTD, 6, in, len);
	round_trip(COMPRESS_ZSTD, 1, rnd, 1 << 20);
	round_trip(COMPRESS_ZSTD, 1, rnd, 1);
	free(in);
	free(rnd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(gzip_levels_on_event_lines),
		cmocka_unit_test(gzip_on_bytes_that_do_not_compress),
		cmocka_unit_test(zstd_levels_on_event_lines_and_noise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
