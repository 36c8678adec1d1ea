// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The reply kmon-kubelet-get hands the agent (k8s/kubelet_reply.h): what the
 * writer sends comes back whole, and what a broken or hostile child could
 * send instead is refused with a line naming what was wrong, before any
 * allocation the reply's lengths ask for.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "k8s/kubelet_reply.h"

#define CAP (1u << 20)

struct got {
	int rc;
	char *body;
	size_t len;
	long status;
	char err[512];
};

/* Bytes as a child would have written them, then the end of the pipe. */
static void read_bytes(const void *raw, size_t n, bool close_after, int timeout_ms,
		       struct got *g)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	/* A pipe holds 64 KiB: enough for every case here. */
	assert_int_equal(write(p[1], raw, n), (ssize_t)n);
	if (close_after)
		close(p[1]);
	memset(g, 0, sizeof(*g));
	g->rc = kubelet_reply__read(p[0], timeout_ms, CAP, &g->body, &g->len, &g->status, g->err,
				    sizeof(g->err));
	close(p[0]);
	if (!close_after)
		close(p[1]);
}

/* What kubelet_reply__write produces, captured. */
static size_t written(int rc, long status, const char *err, const char *body, size_t len,
		      char *out, size_t cap)
{
	int p[2];
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(kubelet_reply__write(p[1], rc, status, err, body, len), 0);
	close(p[1]);
	n = read(p[0], out, cap);
	assert_true(n > 0);
	close(p[0]);
	return (size_t)n;
}

static void round_trip_body(void **state)
{
	static const char body[] = "{\"kind\":\"PodList\",\"items\":[]}";
	char raw[4096];
	size_t n = written(0, 200, "", body, strlen(body), raw, sizeof(raw));
	struct got g;

	(void)state;
	read_bytes(raw, n, true, 1000, &g);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.status, 200);
	assert_int_equal(g.len, strlen(body));
	assert_string_equal(g.body, body); /* NUL-terminated, as the parser wants */
	free(g.body);
}

static void round_trip_kubelet_error(void **state)
{
	char raw[4096];
	size_t n = written(-EACCES, 401, "HTTP 401: the kubelet rejected the token", "ignored",
			   7, raw, sizeof(raw));
	struct got g;

	(void)state;
	read_bytes(raw, n, true, 1000, &g);
	assert_int_equal(g.rc, -EACCES);
	assert_int_equal(g.status, 401);
	assert_null(g.body);
	assert_string_equal(g.err, "HTTP 401: the kubelet rejected the token");
}

static void long_error_line_is_cut(void **state)
{
	char line[3000], raw[8192];
	size_t n;
	struct got g;

	(void)state;
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	n = written(-EIO, 0, line, NULL, 0, raw, sizeof(raw));
	read_bytes(raw, n, true, 1000, &g);
	assert_int_equal(g.rc, -EIO);
	assert_int_equal(strlen(g.err), sizeof(g.err) - 1); /* the caller's buffer, full */
}

static void not_a_reply(void **state)
{
	static const char junk[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
	struct got g;

	(void)state;
	read_bytes(junk, sizeof(junk), true, 1000, &g);
	assert_int_equal(g.rc, -EPROTO);
	assert_non_null(strstr(g.err, "bad magic"));
	assert_null(g.body);
}

/* Forged replies use the header as the writer lays it out. */
#define hdr kubelet_reply_hdr

static struct hdr forged(int32_t rc, uint32_t err_len, int64_t status, uint64_t body_len)
{
	struct hdr h;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, KUBELET_REPLY_MAGIC, sizeof(h.magic));
	h.rc = rc;
	h.err_len = err_len;
	h.status = status;
	h.body_len = body_len;
	return h;
}

static void huge_body_refused_before_allocation(void **state)
{
	/* 1 TiB announced: malloc would fail or, worse, succeed; neither may
	 * happen. The cap is checked first. */
	struct hdr h = forged(0, 0, 200, 1ull << 40);
	struct got g;

	(void)state;
	read_bytes(&h, sizeof(h), false, 1000, &g);
	assert_int_equal(g.rc, -E2BIG);
	assert_non_null(strstr(g.err, "1099511627776 bytes over the 1048576-byte cap"));
	assert_null(g.body);
}

static void inconsistent_headers(void **state)
{
	const struct hdr bad[] = {
		forged(5, 0, 200, 0),            /* positive rc */
		forged(-EIO, 0, 0, 10),          /* an error with a body */
		forged(0, 5000, 200, 0),         /* error line over the limit */
		forged(0, 0, -1, 0),             /* negative status */
		forged(0, 0, 100000, 0),         /* not an HTTP status */
		forged(-100000, 0, 0, 0),        /* not an errno */
	};
	struct got g;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		read_bytes(&bad[i], sizeof(bad[i]), true, 1000, &g);
		assert_int_equal(g.rc, -EPROTO);
		assert_non_null(strstr(g.err, "inconsistent reply"));
		assert_null(g.body);
	}
}

static void cut_short(void **state)
{
	struct {
		struct hdr h;
		char some[10];
	} r = { forged(0, 0, 200, 100), "0123456789" };
	struct got g;

	(void)state;
	/* The child died after 10 of 100 body bytes. */
	read_bytes(&r, sizeof(r), true, 1000, &g);
	assert_int_equal(g.rc, -EPROTO);
	assert_non_null(strstr(g.err, "cut short in its body"));
	assert_null(g.body);
	/* ... or in its header. */
	read_bytes(&r, 7, true, 1000, &g);
	assert_int_equal(g.rc, -EPROTO);
	assert_non_null(strstr(g.err, "cut short in its header"));
}

static void silent_child_times_out(void **state)
{
	struct hdr h = forged(0, 0, 200, 100);
	struct got g;

	(void)state;
	/* Nothing at all, the pipe still open: the deadline ends it. */
	read_bytes("", 0, false, 200, &g);
	assert_int_equal(g.rc, -ETIMEDOUT);
	assert_non_null(strstr(g.err, "within the deadline (header)"));
	/* A header, then nothing of the body. */
	read_bytes(&h, sizeof(h), false, 200, &g);
	assert_int_equal(g.rc, -ETIMEDOUT);
	assert_non_null(strstr(g.err, "within the deadline (body)"));
	assert_null(g.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_body),
		cmocka_unit_test(round_trip_kubelet_error),
		cmocka_unit_test(long_error_line_is_cut),
		cmocka_unit_test(not_a_reply),
		cmocka_unit_test(huge_body_refused_before_allocation),
		cmocka_unit_test(inconsistent_headers),
		cmocka_unit_test(cut_short),
		cmocka_unit_test(silent_child_times_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
