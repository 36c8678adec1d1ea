// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Baselines for the per-event cost benchmark, on the same tracepoint as
 * kmon's kmalloc program: an empty program, and one that only reserves and
 * submits a 108-byte record (the floor for any ring-buffer tracer). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} rb SEC(".maps");

struct rec {
	__u8 b[108];
};

__u64 dropped = 0;

SEC("tp_btf/kmalloc")
int BPF_PROG(empty_kmalloc)
{
	return 0;
}

SEC("tp_btf/kmalloc")
int BPF_PROG(reserve_kmalloc)
{
	struct rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);

	if (!r) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	r->b[0] = 1;
	bpf_ringbuf_submit(r, 0);
	return 0;
}
