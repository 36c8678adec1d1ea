// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The drain's baseline: kmon's own programs, loaded by kmon's loader, read by
 * a bare libbpf ring_buffer__poll() whose callback only counts. Compared
 * with kmon-agent (zero consumers) under the same flood.
 * Prints "attached", then on SIGINT one JSON line: read, kernel dropped.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "agent/loader.h"

#include "tests/bench/bench_common.h"

int main(void)
{
	struct loader_opts lo = {
		.sz = sizeof(lo), .scope_all = true, .event_mask = KMON_EV_MASK_ALL,
		.sample_every = 1, .pid_map_size = 1024, .ringbuf_size = 4u << 20,
		.self_tgid = (uint32_t)getpid(),
	};
	struct loader_counters kc;
	struct ring_buffer *rb;
	struct loader *l;
	unsigned long long n = 0, drops = 0;
	char err[512];

	l = loader__new(&lo, err, sizeof(err));
	if (!l) {
		fprintf(stderr, "bench_bare_reader: %s\n", err);
		return 1;
	}
	rb = ring_buffer__new(loader__ringbuf_fd(l), on_rec, &n, NULL);
	if (!rb)
		return 1;
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	printf("attached\n");
	fflush(stdout);
	while (!stop)
		ring_buffer__poll(rb, 100);
	loader__detach(l);
	ring_buffer__consume(rb);
	if (!loader__read_counters(l, &kc))
		for (int t = 1; t <= KMON_EV_TYPE_MAX; t++)
			drops += kc.c[KMON_CTR_DROP_BASE + t];
	printf("{\"read\":%llu,\"dropped\":%llu}\n", n, drops);
	ring_buffer__free(rb);
	loader__free(l);
	return 0;
}
