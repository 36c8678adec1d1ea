// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The shared layer's parsers: every form a user may type, and the ones that
 * must be refused with a message naming what was wrong. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "shm/err.h"
#include "shm/common/parse.h"

static void sizes_accepted(void **state)
{
	static const struct { const char *s; size_t v; } ok[] = {
		{ "0", 0 }, { "4096", 4096 }, { "64K", 64u << 10 }, { "64k", 64u << 10 },
		{ "8KiB", 8u << 10 }, { "8kb", 8u << 10 }, { "4M", 4u << 20 }, { "4MiB", 4u << 20 },
		{ "16mb", 16u << 20 }, { "1G", 1u << 30 }, { "2GiB", 2ull << 30 }, { "3g", 3ull << 30 },
	};
	size_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 12345;
		assert_int_equal(kmon_parse__size(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
}

static void sizes_refused(void **state)
{
	static const char *const bad[] = { "", "M", "-1", "+1", " 1", "1.5M", "1T", "1 M", "1MM",
					   "1Bi", "0x10", "1KiBx", "K1" };
	size_t v = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(kmon_parse__size(bad[i], &v), -EINVAL);
		assert_int_equal(v, 7); /* untouched on failure */
	}
	assert_int_equal(kmon_parse__size(NULL, &v), -EINVAL);
	assert_int_equal(kmon_parse__size("18446744073709551615G", &v), -ERANGE);
	assert_int_equal(kmon_parse__size("99999999999999999999999", &v), -ERANGE);
	assert_int_equal(v, 7);
}

static void hostport_accepted(void **state)
{
	static const struct { const char *s, *host; uint16_t port; } ok[] = {
		{ "0.0.0.0:9470", "0.0.0.0", 9470 },
		{ "127.0.0.1:1", "127.0.0.1", 1 },
		{ "localhost:65535", "localhost", 65535 },
		{ "[::1]:9470", "::1", 9470 },
		{ "[::]:9471", "::", 9471 },
		{ "[fe80::1%eth0]:80", "fe80::1%eth0", 80 },
		{ ":9472", "", 9472 },
		{ "127.0.0.1:0", "127.0.0.1", 0 }, /* any free port */
		{ "node-1.example:8080", "node-1.example", 8080 },
	};
	char host[64], err[200];
	uint16_t port;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(kmon_parse__hostport(ok[i].s, host, sizeof(host), &port, err,
						      sizeof(err)), 0);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
	}
}

static void hostport_refused(void **state)
{
	static const struct { const char *s, *why; } bad[] = {
		{ "", "empty address" },
		{ "9470", "is not HOST:PORT" },
		{ "localhost", "is not HOST:PORT" },
		{ "::1:9470", "IPv6 address goes in brackets" },
		{ "::1", "IPv6 address goes in brackets" },
		{ "[::1]9470", "no ':PORT' after ']'" },
		{ "[::1]", "no ':PORT' after ']'" },
		{ "[::1:9470", "'[' without ']'" },
		{ "[]:9470", "empty brackets" },
		{ "0.0.0.0:", "port is not a number" },
		{ "0.0.0.0:http", "port is not a number" },
		{ "0.0.0.0:-1", "port is not a number" },
		{ "0.0.0.0:65536", "from 0 to 65535" },
		{ "0.0.0.0:94x", "from 0 to 65535" },
		{ "averyveryveryveryveryveryveryveryveryveryverylonghostnamebeyond64:1",
		  "host longer than 63 bytes" },
	};
	char host[64], err[200];
	uint16_t port;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(kmon_parse__hostport(bad[i].s, host, sizeof(host), &port, err,
						      sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].why))
			fail_msg("'%s': message '%s' does not say '%s'", bad[i].s, err, bad[i].why);
	}
}

static void listen_addr_resolves(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char err[300], buf[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(kmon_parse__listen_addr("--x", "[::1]:9470", &ss, &len, err, sizeof(err)),
			 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 9470);
	assert_non_null(inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf,
				  sizeof(buf)));
	assert_string_equal(buf, "::1");

	assert_int_equal(kmon_parse__listen_addr("--x", "127.0.0.1:80", &ss, NULL, err, sizeof(err)),
			 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);

	/* No host: the loopback address, as before this parser. */
	assert_int_equal(kmon_parse__listen_addr("--x", ":9470", &ss, NULL, err, sizeof(err)), 0);
	if (ss.ss_family == AF_INET)
		assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
	else
		assert_true(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));

	/* The option name leads every message. */
	assert_int_equal(kmon_parse__listen_addr("--listen", "[::1]", &ss, NULL, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "--listen: '[::1]': no ':PORT'"));
	assert_int_equal(kmon_parse__listen_addr("--listen", "999.1.1.1.invalid.:80", &ss, NULL, err,
						 sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--listen: 999.1.1.1.invalid.:80: "));
}

static void err_set(void **state)
{
	char err[8];

	(void)state;
	assert_int_equal(kmon_err__set(err, sizeof(err), -ENOENT, "%s %d", "abcdef", 42), -ENOENT);
	assert_string_equal(err, "abcdef "); /* truncated, terminated */
	assert_int_equal(kmon_err__set(NULL, 0, -EIO, "x"), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sizes_accepted),
		cmocka_unit_test(sizes_refused),
		cmocka_unit_test(hostport_accepted),
		cmocka_unit_test(hostport_refused),
		cmocka_unit_test(listen_addr_resolves),
		cmocka_unit_test(err_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
