// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/options.h"
#include <linux/types.h>
#include "bpf/kmon_event.h"

static char err[512];

#define PARSE(o, ...)                                                             \
	({                                                                        \
		char *argv_[] = { "kmon-agent", __VA_ARGS__, NULL };              \
		agent_options_parse((int)(sizeof(argv_) / sizeof(argv_[0])) - 1, \
				    argv_, (o), err, sizeof(err));                \
	})

static void defaults(void **state)
{
	struct agent_options o;
	char *argv[] = { "kmon-agent", NULL };

	(void)state;
	unsetenv("NODE_IP");
	assert_int_equal(agent_options_parse(1, argv, &o, err, sizeof(err)), 0);
	assert_false(o.scope_all);
	assert_int_equal(o.ringbuf_size, 16u << 20);
	assert_int_equal(o.event_mask, KMON_EV_MASK_ALL);
	assert_int_equal(o.sample_every, 1);
	assert_int_equal(o.live_map_size, 262144);
	assert_int_equal(o.drain_nice, -15);
	assert_int_equal(o.drain_rt_priority, 0);
	assert_int_equal(o.run_uid, 65532);
	assert_int_equal(o.run_gid, 65532);
	assert_null(o.socket_group);
	assert_string_equal(o.socket_path, "/run/kmon/kmon.sock");
	assert_int_equal(o.socket_mode, 0660);
	assert_int_equal(o.shm_budget, 256u << 20);
	assert_int_equal(o.max_pending_per_uid, 4);
	assert_int_equal(o.max_consumers_per_uid, 8);
	assert_null(o.kubelet_url);
	assert_false(o.raw_kernel_addresses); /* consumers never see addresses by default */
	assert_int_equal(o.kernel_symbols, 0);  /* auto */
}

static void good_values(void **state)
{
	struct agent_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--scope", "all", "--ringbuf-size", "64K", "--events",
			       "process_exec", "--sample", "7", "--pid", "12", "--pid", "13",
			       "--pid-map-size", "1024", "--raw-kernel-addresses", "--kernel-symbols",
			       "ksym-iter"), 0);
	assert_true(o.raw_kernel_addresses);
	assert_int_equal(o.kernel_symbols, 2);
	assert_true(o.scope_all);
	assert_int_equal(o.ringbuf_size, 65536);
	assert_int_equal(o.event_mask, KMON_EV_MASK(KMON_EV_PROCESS_EXEC));
	assert_int_equal(o.sample_every, 7);
	assert_int_equal(o.n_pids, 2);
	assert_int_equal(o.pids[1], 13);
	assert_int_equal(o.pid_map_size, 1024);
	assert_int_equal(PARSE(&o, "--shm-budget", "96M", "--max-pending-per-uid", "2",
			       "--max-consumers-per-uid", "3"), 0);
	assert_int_equal(o.shm_budget, 96u << 20);
	assert_int_equal(o.max_pending_per_uid, 2);
	assert_int_equal(o.max_consumers_per_uid, 3);
	assert_int_equal(PARSE(&o, "--run-as", "1000:65534"), 0);
	assert_int_equal(o.run_uid, 1000);
	assert_int_equal(o.run_gid, 65534);
	assert_int_equal(PARSE(&o, "--events", "slab_alloc,slab_free,oom_kill", "--live-map-size",
			       "4096"), 0);
	assert_int_equal(o.event_mask, KMON_EV_MASK(KMON_EV_SLAB_ALLOC) |
					       KMON_EV_MASK(KMON_EV_SLAB_FREE) |
					       KMON_EV_MASK(KMON_EV_OOM_KILL));
	assert_int_equal(o.live_map_size, 4096);
}

static void node_ip_gives_kubelet_url(void **state)
{
	struct agent_options o;
	char *argv[] = { "kmon-agent", NULL };

	(void)state;
	setenv("NODE_IP", "10.1.2.3", 1);
	assert_int_equal(agent_options_parse(1, argv, &o, err, sizeof(err)), 0);
	assert_string_equal(o.kubelet_url, "https://10.1.2.3:10250");
	setenv("NODE_IP", "fd00::1", 1);
	assert_int_equal(agent_options_parse(1, argv, &o, err, sizeof(err)), 0);
	assert_string_equal(o.kubelet_url, "https://[fd00::1]:10250");
	unsetenv("NODE_IP");
}

/* Every bad value: -EINVAL and a message naming the option. */
static void bad_values(void **state)
{
	static const char *const cases[][3] = {
		{ "--scope", "pods", "--scope" },
		{ "--kernel-symbols", "proc", "not one of auto, kallsyms, ksym-iter, off" },
		{ "--attach", "kprobe", "--attach" },
		{ "--ringbuf-size", "3000", "power of two" },
		{ "--ringbuf-size", "1024", "page size" },
		{ "--ringbuf-size", "12M", "power of two" },
		{ "--ringbuf-size", "-4096", "--ringbuf-size" },
		{ "--ringbuf-size", "4X", "not a size" },
		{ "--ringbuf-size", "99999999999999999999", "--ringbuf-size" },
		{ "--events", "memory_alloc,exec", "'exec'" },
		{ "--events", "", "--events" },
		{ "--events", "slab", "'slab'" },
		{ "--live-map-size", "10", "--live-map-size" },
		{ "--live-map-size", "many", "--live-map-size" },
		{ "--sample", "0", "--sample" },
		{ "--drain-nice", "5", "from -20 to 0" },
		{ "--drain-nice", "-21", "from -20 to 0" },
		{ "--drain-nice", "-5x", "'-5x'" },
		{ "--drain-rt-priority", "100", "from 0 (off) to 99" },
		{ "--drain-rt-priority", "-1", "from 0 (off) to 99" },
		{ "--drain-rt-priority", "5x", "'5x'" },
		{ "--sample", "ten", "--sample" },
		{ "--pid-map-size", "1", "--pid-map-size" },
		{ "--pid", "-5", "--pid" },
		{ "--pid", "abc", "--pid" },
		{ "--log-level", "loud", "--log-level" },
		{ "--socket-mode", "0666", "any user" },
		{ "--socket-mode", "999", "octal" },
		{ "--max-consumers", "0", "--max-consumers" },
		{ "--max-ring-size", "5000", "--max-ring-size" },
		{ "--rescan-interval", "-1", "--rescan-interval" },
		{ "--rescan-interval", "nan", "--rescan-interval" },
		{ "--kubelet-url", "ftp://x", "--kubelet-url" },
		{ "--kubelet-refresh", "0", "--kubelet-refresh" },
		{ "--kubelet-helper", "", "--kubelet-helper: empty path" },
		{ "--metrics-addr", "9450", "HOST:PORT" },
		{ "--health-addr", "9472", "--health-addr" },
		{ "--history-bytes", "2G", "--history-bytes" },
		{ "--shm-budget", "1K", "--shm-budget" },
		{ "--shm-budget", "lots", "--shm-budget" },
		{ "--max-pending-per-uid", "0", "--max-pending-per-uid" },
		{ "--max-consumers-per-uid", "2000", "--max-consumers-per-uid" },
		{ "--run-as", "65532", "UID:GID" },
		{ "--run-as", "kmon:kmon", "UID:GID" },
		{ "--run-as", "-1:0", "UID:GID" },
		{ "--run-as", " 1:2", "UID:GID" },
		{ "--run-as", "1:", "GID" },
		{ "--run-as", "1:+2", "GID" },
		{ "--run-as", "1:2x", "GID" },
		{ "--run-as", "4294967295:1", "below 4294967295" },
		{ "--run-as", "1:4294967295", "below 4294967295" },
		{ "--run-as", "99999999999999999999:1", "--run-as" },
	};
	struct agent_options o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = { "kmon-agent", (char *)cases[i][0], (char *)cases[i][1], NULL };

		assert_int_equal(agent_options_parse(3, argv, &o, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i][2]))
			fail_msg("%s %s: message '%s' lacks '%s'", cases[i][0], cases[i][1], err,
				 cases[i][2]);
		assert_null(strchr(err, '\n'));
	}
}

static void unknown_and_missing(void **state)
{
	struct agent_options o;

	(void)state;
	assert_int_equal(PARSE(&o, "--frobnicate"), -EINVAL);
	assert_non_null(strstr(err, "--frobnicate"));
	assert_int_equal(PARSE(&o, "--scope"), -EINVAL);
	assert_non_null(strstr(err, "needs a value"));
	assert_int_equal(PARSE(&o, "stray"), -EINVAL);
	assert_non_null(strstr(err, "stray"));
	/* The probes' own listener cannot share the metrics port. */
	assert_int_equal(PARSE(&o, "--metrics-addr", "0.0.0.0:9470", "--health-addr", "0.0.0.0:9470"),
			 -EINVAL);
	assert_non_null(strstr(err, "--health-addr"));
	assert_int_equal(PARSE(&o, "--metrics-addr", "0.0.0.0:9470", "--health-addr", "0.0.0.0:9472"), 0);
	assert_string_equal(o.health_addr, "0.0.0.0:9472");
	/* Addresses go through the one HOST:PORT parser at start-up. */
	assert_int_equal(PARSE(&o, "--metrics-addr", "[::1]:9470"), 0);
	assert_non_null(o.metrics_addr); /* argv_ is gone after PARSE: not compared */
	assert_int_equal(PARSE(&o, "--metrics-addr", "0.0.0.0:http"), -EINVAL);
	assert_non_null(strstr(err, "--metrics-addr: '0.0.0.0:http': port is not a number"));
	assert_int_equal(PARSE(&o, "--health-addr", "::1:9472"), -EINVAL);
	assert_non_null(strstr(err, "--health-addr"));
	assert_non_null(strstr(err, "brackets"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(good_values),
		cmocka_unit_test(node_ip_gives_kubelet_url),
		cmocka_unit_test(bad_values),
		cmocka_unit_test(unknown_and_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
