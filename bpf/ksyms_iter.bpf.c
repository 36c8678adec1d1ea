// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The kernel symbol table as /proc/kallsyms prints it, but with the real
 * addresses whatever kptr_restrict says: the ksym iterator (kernel >= 6.0)
 * hands a BPF program each symbol's value, and kptr_restrict only decides
 * what kallsyms *prints*. The agent reads it while privileged, with the same
 * parser as /proc/kallsyms (the same text format).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("iter/ksym")
int dump_ksym(struct bpf_iter__ksym *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct kallsym_iter *it = ctx->ksym;
	__u64 value;
	char type;

	if (!it)
		return 0;
	value = it->value;
	type = it->type;
	/* Text symbols only: call sites are code. */
	if (type != 't' && type != 'T' && type != 'w' && type != 'W')
		return 0;
	if (it->module_name[0])
		BPF_SEQ_PRINTF(seq, "%llx %c %s\t[%s]\n", value, type, it->name, it->module_name);
	else
		BPF_SEQ_PRINTF(seq, "%llx %c %s\n", value, type, it->name);
	return 0;
}
