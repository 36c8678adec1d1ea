// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Writes records into a BPF ring buffer on demand (BPF_PROG_TEST_RUN of a
 * syscall program), for the test of the agent's ring reader (agent/kring.h):
 * records of varying length, some discarded, over many laps of a one-page
 * ring. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

/* What a test run asks for: n records numbered from first; record k has
 * 8 + 8 * (k % 7) bytes (its number, then its number again in each word);
 * every discard_every-th is reserved and then discarded (0: none). */
struct args {
	__u32 n;
	__u32 discard_every;
	__u64 first;
	__u32 written;   /* out: records submitted */
	__u32 discarded; /* out */
	__u32 full;      /* out: reservations refused, the ring was full */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[7]);
} buf SEC(".maps");

struct loop_ctx {
	struct args a;
	__u64 *b;
};

/* One record (bpf_loop: a loop the verifier need not unroll). */
static long write_one(__u32 i, struct loop_ctx *c)
{
	__u64 k = c->a.first + i, *r;
	__u64 bytes = 8 + 8 * (k % 7);

	if (c->a.discard_every && k % c->a.discard_every == 0) {
		r = bpf_ringbuf_reserve(&rb, 16, 0);
		if (!r) {
			c->a.full++;
			return 0;
		}
		r[0] = k;
		bpf_ringbuf_discard(r, 0);
		c->a.discarded++;
		return 0;
	}
	for (__u32 w = 0; w < 7; w++)
		c->b[w] = k;
	bytes &= 63; /* for the verifier: at most the 56 bytes of buf */
	if (bytes > 56)
		return 0;
	if (bpf_ringbuf_output(&rb, c->b, bytes, 0))
		c->a.full++;
	else
		c->a.written++;
	return 0;
}

SEC("syscall")
int write_records(struct args *a)
{
	__u32 zero = 0;
	struct loop_ctx c = { .a = *a };

	c.b = bpf_map_lookup_elem(&buf, &zero);
	if (!c.b)
		return 1;
	bpf_loop(c.a.n, write_one, &c, 0);
	*a = c.a;
	return 0;
}
