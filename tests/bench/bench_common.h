/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the benchmark readers share: a stop flag for SIGINT/SIGTERM and a
 * ring-buffer callback that only counts records. */
#ifndef KMON_TESTS_BENCH_COMMON_H
#define KMON_TESTS_BENCH_COMMON_H

#include <signal.h>
#include <stddef.h>

static volatile sig_atomic_t stop;

static void on_sig(int s)
{
	(void)s;
	stop = 1;
}

static int on_rec(void *ctx, void *data, size_t len)
{
	(void)data;
	(void)len;
	(*(unsigned long long *)ctx)++;
	return 0;
}

#endif
