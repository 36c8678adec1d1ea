// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The command line kmon-forward, kmon-aggregate and kmon-top share: the
 * shared options as a user types them, a program's own options passed through,
 * and every refusal with the message that names what was wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "consumers/common/cli.h"
#include "shm/common/log.h"

#define ALL (CONSUMER_CLI_SOCKET | CONSUMER_CLI_NAME | CONSUMER_CLI_SCHED)

enum { O_COUNT = 256, O_FLAG };

static const struct option own[] = {
	{ "count", required_argument, NULL, O_COUNT },
	{ "flag", no_argument, NULL, O_FLAG },
	{ 0 }
};

struct seen {
	int count, flags, calls;
};

/* The program's side: --count takes 1 to 9. */
static int own_option(void *ctx, int code, const char *arg)
{
	struct seen *s = ctx;

	s->calls++;
	if (code == O_FLAG) {
		s->flags++;
		return 0;
	}
	assert_int_equal(code, O_COUNT);
	if (strlen(arg) != 1 || arg[0] < '1' || arg[0] > '9')
		return log_fail("--count: '%s' is not 1 to 9", arg);
	s->count = arg[0] - '0';
	return 0;
}

/* Parses argv (NULL-ended, after the program name) with stderr captured into
 * msg: what the user would read. */
static int parse(struct consumer_cli *cli, unsigned which, struct seen *s, char *msg,
		 size_t msg_len, ...)
{
	char *argv[32];
	int argc = 0, saved, rc;
	FILE *cap = tmpfile();
	size_t n;
	va_list ap;

	assert_non_null(cap);
	argv[argc++] = "kmon-test";
	va_start(ap, msg_len);
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(cap), STDERR_FILENO) >= 0);
	optind = 0; /* glibc: a fresh scan */
	rc = consumer_cli__parse(cli, which, "kmon-test", own, own_option, s, argc, argv);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(cap);
	n = fread(msg, 1, msg_len - 1, cap);
	msg[n] = '\0';
	fclose(cap);
	return rc;
}

static void defaults(void **state)
{
	struct consumer_cli cli;
	struct seen s = { 0 };
	char msg[512];

	(void)state;
	assert_int_equal(parse(&cli, ALL, &s, msg, sizeof(msg), NULL), 0);
	assert_string_equal(cli.socket_path, "/run/kmon/kmon.sock");
	assert_string_equal(cli.name, "kmon-test");
	assert_false(cli.sched_normal);
	assert_false(cli.help);
	assert_int_equal(s.calls, 0);
	assert_string_equal(msg, "");
}

static void shared_and_own_options(void **state)
{
	struct consumer_cli cli;
	struct kmon_client_opts co;
	struct seen s = { 0 };
	char msg[512];

	(void)state;
	assert_int_equal(parse(&cli, ALL, &s, msg, sizeof(msg), "--socket", "/tmp/k.sock",
			       "--count", "7", "--name", "fwd-1", "--flag", "--sched", "normal",
			       "--flag", NULL), 0);
	assert_string_equal(cli.socket_path, "/tmp/k.sock");
	assert_string_equal(cli.name, "fwd-1");
	assert_true(cli.sched_normal);
	assert_int_equal(s.count, 7);
	assert_int_equal(s.flags, 2);
	assert_int_equal(s.calls, 3);
	assert_string_equal(msg, "");

	memset(&co, 0xa5, sizeof(co));
	consumer_cli__client_opts(&cli, &co);
	assert_int_equal(co.sz, sizeof(co));
	assert_string_equal(co.socket_path, "/tmp/k.sock");
	assert_string_equal(co.name, "fwd-1");
	assert_int_equal(co.ring_bytes, 0);
	assert_int_equal(co.event_mask, 0);
	assert_false(co.reconnect);

	/* --sched batch is the default, said again */
	assert_int_equal(parse(&cli, ALL, &s, msg, sizeof(msg), "--sched", "batch", NULL), 0);
	assert_false(cli.sched_normal);
}

static void refusals(void **state)
{
	static const struct {
		const char *args[4];
		unsigned which;
		const char *says;
	} bad[] = {
		{ { "--socket", "" }, ALL, "kmon-test: --socket: path must be 1 to 107 bytes long\n" },
		{ { "--name", "a b" }, ALL,
		  "kmon-test: --name: must be 1 to 63 characters without spaces\n" },
		{ { "--name", "a\nb" }, ALL,
		  "kmon-test: --name: must be 1 to 63 characters without spaces\n" },
		{ { "--name", "" }, ALL,
		  "kmon-test: --name: must be 1 to 63 characters without spaces\n" },
		{ { "--sched", "fast" }, ALL, "kmon-test: --sched: 'fast' is not batch or normal\n" },
		/* a shared option the program does not take is unknown to it */
		{ { "--sched", "normal" }, CONSUMER_CLI_SOCKET,
		  "kmon-test: unknown or incomplete option '--sched' (see --help)\n" },
		{ { "--bogus" }, ALL, "kmon-test: unknown or incomplete option '--bogus' (see --help)\n" },
		{ { "--socket" }, ALL,
		  "kmon-test: unknown or incomplete option '--socket' (see --help)\n" },
		{ { "--flag", "extra" }, ALL, "kmon-test: unexpected argument 'extra'\n" },
		{ { "--count", "12" }, ALL, "kmon-test: --count: '12' is not 1 to 9\n" },
	};
	char path[200], msg[512];
	struct consumer_cli cli;
	struct seen s;

	(void)state;
	log_init("kmon-test", LOG_INFO);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&s, 0, sizeof(s));
		assert_int_equal(parse(&cli, bad[i].which, &s, msg, sizeof(msg), bad[i].args[0],
				       bad[i].args[1], bad[i].args[2], bad[i].args[3]), -1);
		assert_string_equal(msg, bad[i].says);
	}
	/* A socket path one byte too long for sun_path. */
	memset(path, 'x', 108);
	path[108] = '\0';
	assert_int_equal(parse(&cli, ALL, &s, msg, sizeof(msg), "--socket", path, NULL), -1);
	assert_string_equal(msg, "kmon-test: --socket: path must be 1 to 107 bytes long\n");
	path[107] = '\0';
	assert_int_equal(parse(&cli, ALL, &s, msg, sizeof(msg), "--socket", path, NULL), 0);
	assert_int_equal(strlen(cli.socket_path), 107);
}

static void help_stops_the_scan(void **state)
{
	struct consumer_cli cli;
	struct seen s = { 0 };
	char msg[512];

	(void)state;
	assert_int_equal(parse(&cli, CONSUMER_CLI_SOCKET, &s, msg, sizeof(msg), "--flag", "--help",
			       "--bogus", "extra", NULL), 0);
	assert_true(cli.help);
	assert_int_equal(s.flags, 1);
	assert_string_equal(msg, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(shared_and_own_options),
		cmocka_unit_test(refusals),
		cmocka_unit_test(help_stops_the_scan),
	};

	log_init("kmon-test", LOG_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
