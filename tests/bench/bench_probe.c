// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Baseline probes for the benchmarks, run side by side with kmon:
 *   bench_probe empty     an empty tp_btf program on kmalloc
 *   bench_probe reserve   a 108-byte reserve/submit program on kmalloc, with a
 *                         bare libbpf reader whose callback only counts
 * Prints "attached" when ready; on SIGINT prints one JSON line: records read,
 * dropped, and the kernel's run_cnt/run_time_ns (kernel.bpf_stats_enabled).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "baseline.skel.h"

#include "tests/bench/bench_common.h"

int main(int argc, char **argv)
{
	struct baseline *skel;
	struct ring_buffer *rb = NULL;
	struct bpf_prog_info info;
	__u32 info_len = sizeof(info);
	struct bpf_link *link;
	struct bpf_program *prog;
	unsigned long long n = 0;
	bool reserve = argc > 1 && !strcmp(argv[1], "reserve");

	skel = baseline__open();
	if (!skel)
		return 1;
	bpf_program__set_autoload(reserve ? skel->progs.empty_kmalloc : skel->progs.reserve_kmalloc,
				  false);
	if (baseline__load(skel)) {
		fprintf(stderr, "bench_probe: load failed\n");
		return 1;
	}
	prog = reserve ? skel->progs.reserve_kmalloc : skel->progs.empty_kmalloc;
	link = bpf_program__attach(prog);
	if (!link) {
		fprintf(stderr, "bench_probe: attach failed: %s\n", strerror(errno));
		return 1;
	}
	if (reserve) {
		rb = ring_buffer__new(bpf_map__fd(skel->maps.rb), on_rec, &n, NULL);
		if (!rb)
			return 1;
	}
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	printf("attached\n");
	fflush(stdout);
	while (!stop) {
		if (rb)
			ring_buffer__poll(rb, 100);
		else
			usleep(100000);
	}
	bpf_link__destroy(link);
	if (rb)
		ring_buffer__consume(rb);
	memset(&info, 0, sizeof(info));
	bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &info_len);
	printf("{\"read\":%llu,\"dropped\":%llu,\"run_cnt\":%llu,\"run_time_ns\":%llu,"
	       "\"recursion_misses\":%llu}\n",
	       n, (unsigned long long)skel->bss->dropped, (unsigned long long)info.run_cnt,
	       (unsigned long long)info.run_time_ns, (unsigned long long)info.recursion_misses);
	ring_buffer__free(rb);
	baseline__destroy(skel);
	return 0;
}
