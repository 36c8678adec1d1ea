// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The kubelet client's command line (kmon-kubelet-get and the library's test
 * driver): every option as kmon-agent passes it, and each way it can be
 * wrong refused with a message naming what. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/kubelet_args.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static void all_options(void **state)
{
	char *argv[] = { "kmon-kubelet-get", "--url", "https://10.0.0.1:10250",
			 "--token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token",
			 "--ca-file", "/ca.crt", "--insecure", "--timeout-ms", "3600000",
			 "--max-body", "4294967296", NULL };
	struct kubelet_opts o = { .sz = sizeof(o) };
	char err[200] = "";

	(void)state;
	assert_int_equal(kubelet_args__parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
	assert_string_equal(o.url, "https://10.0.0.1:10250");
	assert_string_equal(o.token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
	assert_string_equal(o.ca_file, "/ca.crt");
	assert_true(o.insecure);
	assert_int_equal(o.timeout_ms, 3600000);
	assert_int_equal(o.max_body, 1ull << 32);
	assert_string_equal(err, "");
}

static void only_url_leaves_the_defaults(void **state)
{
	char *argv[] = { "x", "--url=https://127.0.0.1:10250", NULL };
	struct kubelet_opts o = { .sz = sizeof(o) };
	char err[200] = "";

	(void)state;
	/* Twice: a second parse in the same process starts over. */
	for (int i = 0; i < 2; i++) {
		memset(&o, 0, sizeof(o));
		o.sz = sizeof(o);
		assert_int_equal(kubelet_args__parse(ARGC(argv), argv, &o, err, sizeof(err)), 0);
		assert_string_equal(o.url, "https://127.0.0.1:10250");
		assert_null(o.token_file);
		assert_null(o.ca_file);
		assert_false(o.insecure);
		assert_int_equal(o.timeout_ms, 0);
		assert_int_equal(o.max_body, 0);
	}
}

static void refused(void **state)
{
	static const struct {
		char *argv[6];
		const char *why;
	} bad[] = {
		{ { "x", NULL }, "--url is required" },
		{ { "x", "--token-file", "/t", NULL }, "--url is required" },
		{ { "x", "--url", "u", "--verbose", NULL }, "unknown option '--verbose'" },
		{ { "x", "--url", "u", "-k", NULL }, "unknown option '-k'" },
		{ { "x", "--url", NULL }, "--url needs a value" },
		{ { "x", "--url", "u", "--insecure=yes", NULL }, "unknown option '--insecure=yes'" },
		{ { "x", "--url", "u", "extra", NULL }, "'extra': only options are taken" },
		{ { "x", "--url", "u", "--timeout-ms", "3600001", NULL },
		  "--timeout-ms: '3600001' is not a number up to 3600000" },
		{ { "x", "--url", "u", "--timeout-ms", "-1", NULL },
		  "--timeout-ms: '-1' is not a number up to 3600000" },
		{ { "x", "--url", "u", "--timeout-ms", "10s", NULL },
		  "--timeout-ms: '10s' is not a number up to 3600000" },
		{ { "x", "--url", "u", "--max-body", "", NULL },
		  "--max-body: '' is not a number up to 4294967296" },
		{ { "x", "--url", "u", "--max-body", "99999999999999999999999", NULL },
		  "--max-body: '99999999999999999999999' is not a number up to 4294967296" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kubelet_opts o = { .sz = sizeof(o) };
		char err[200] = "";
		char *argv[6];
		int argc = 0;

		/* getopt may permute argv: a copy per case. */
		while (bad[i].argv[argc]) {
			argv[argc] = bad[i].argv[argc];
			argc++;
		}
		argv[argc] = NULL;
		assert_int_equal(kubelet_args__parse(argc, argv, &o, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, bad[i].why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(all_options),
		cmocka_unit_test(only_url_leaves_the_defaults),
		cmocka_unit_test(refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
