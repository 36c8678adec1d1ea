// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/loader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "kernel_monitor.skel.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/*
 * The irq-depth programs must attach exits before entries (and detach
 * entries first): an entry seen without its exit would leave a CPU marked as
 * "in irq" forever and silently hide that CPU's memory events.
 */
#define IRQ_PROGS 6

struct loader {
	struct kernel_monitor *skel;
	struct bpf_link *irq_links[IRQ_PROGS]; /* in attach order */
	int ncpus;
};

static struct bpf_program **irq_progs_in_order(struct kernel_monitor *skel,
					       struct bpf_program *out[IRQ_PROGS])
{
	out[0] = skel->progs.kmon_irq_exit;
	out[1] = skel->progs.kmon_softirq_exit;
	out[2] = skel->progs.kmon_timer_exit;
	out[3] = skel->progs.kmon_irq_enter;
	out[4] = skel->progs.kmon_softirq_enter;
	out[5] = skel->progs.kmon_timer_enter;
	return out;
}

static int attach_irq_progs(struct loader *l)
{
	struct bpf_program *progs[IRQ_PROGS];

	irq_progs_in_order(l->skel, progs);
	for (int i = 0; i < IRQ_PROGS; i++) {
		if (!bpf_program__autoload(progs[i]))
			continue;
		l->irq_links[i] = bpf_program__attach(progs[i]);
		if (!l->irq_links[i]) {
			int ret = -errno;

			l->irq_links[i] = NULL;
			return ret;
		}
	}
	return 0;
}

static void detach_irq_progs(struct loader *l)
{
	for (int i = IRQ_PROGS - 1; i >= 0; i--) {
		bpf_link__destroy(l->irq_links[i]);
		l->irq_links[i] = NULL;
	}
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool has_cap(const struct __user_cap_data_struct d[2], int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

static const char *const required_tracepoints[] = {
	"btf_trace_kmalloc",	       "btf_trace_kfree",	      "btf_trace_sched_process_exec",
	"btf_trace_sched_process_fork", "btf_trace_sched_process_exit", "btf_trace_irq_handler_entry",
	"btf_trace_irq_handler_exit",  "btf_trace_softirq_entry",     "btf_trace_softirq_exit",
};

static bool kernel_has_tracepoint(const char *typedef_name)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool found;

	if (!btf)
		return false;
	found = btf__find_by_name_kind(btf, typedef_name, BTF_KIND_TYPEDEF) >= 0;
	btf__free(btf);
	return found;
}

int loader_preflight(char *err, size_t errlen)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};
	struct btf *btf;

	if (syscall(SYS_capget, &hdr, data)) {
		set_err(err, errlen, "cannot read own capabilities: %s", strerror(errno));
		return -errno;
	}
	if (!has_cap(data, CAP_SYS_ADMIN) && !(has_cap(data, CAP_BPF) && has_cap(data, CAP_PERFMON))) {
		set_err(err, errlen,
			"missing privileges: kmon-agent needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); "
			"run it as root or grant them (e.g. setpriv --inh-caps +bpf,+perfmon --ambient-caps +bpf,+perfmon)");
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		set_err(err, errlen,
			"no kernel BTF at /sys/kernel/btf/vmlinux (%s): kmon needs a kernel built with "
			"CONFIG_DEBUG_INFO_BTF=y (5.8+); in a container, mount the host's /sys read-only",
			strerror(errno));
		return -ENOENT;
	}
	btf = btf__load_vmlinux_btf();
	if (!btf) {
		set_err(err, errlen, "cannot parse kernel BTF /sys/kernel/btf/vmlinux: %s",
			strerror(errno));
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(required_tracepoints) / sizeof(required_tracepoints[0]); i++) {
		if (btf__find_by_name_kind(btf, required_tracepoints[i], BTF_KIND_TYPEDEF) < 0) {
			set_err(err, errlen, "tracepoint %s is missing from this kernel's BTF",
				required_tracepoints[i] + strlen("btf_trace_"));
			btf__free(btf);
			return -ENOENT;
		}
	}
	btf__free(btf);
	return 0;
}

/* Event programs come in two kinds; only the chosen one is loaded, and only
 * for the events asked for: a program that returns at once still costs a
 * call on every kmalloc (and the irq-depth programs one on every interrupt). */
static int choose_programs(struct kernel_monitor *skel, bool classic, uint32_t event_mask,
			   char *err, size_t errlen)
{
#define M(t) (event_mask & KMON_EV_MASK(KMON_EV_##t))
	bool kmalloc = M(MEMORY_ALLOC) || M(MEMORY_FREE);
	/* kfree() may free a slab object: slab_free needs it too. */
	bool kfree = M(MEMORY_FREE) || M(SLAB_FREE);
	bool slab_alloc = M(SLAB_ALLOC) || M(SLAB_FREE), slab_free = M(SLAB_FREE);
	bool oom = M(OOM_KILL);
	bool mem = kmalloc || kfree || slab_alloc;
	bool want[3] = { kmalloc, kfree, M(PROCESS_EXEC) };
#undef M
	struct bpf_program *irq[IRQ_PROGS];
	struct bpf_program *btf_progs[] = { skel->progs.kmon_kmalloc, skel->progs.kmon_kfree,
					    skel->progs.kmon_exec };
	struct bpf_program *tp_progs[] = { skel->progs.kmon_kmalloc_tp, skel->progs.kmon_kfree_tp,
					   skel->progs.kmon_exec_tp };

	if (classic && access("/sys/kernel/tracing/events/kmem/kmalloc", F_OK) &&
	    access("/sys/kernel/debug/tracing/events/kmem/kmalloc", F_OK)) {
		set_err(err, errlen,
			"--attach tracepoint needs tracefs, which is not mounted: mount it "
			"(mount -t tracefs nodev /sys/kernel/tracing) or use the default --attach tp_btf");
		return -ENOENT;
	}
	/* Slab events need the cache as an argument (kernel 6.0+); their
	 * classic tracepoints do not carry it, so they are BTF-only. */
	if ((slab_alloc || slab_free) &&
	    (!kernel_has_tracepoint("btf_trace_kmem_cache_alloc") ||
	     !kernel_has_tracepoint("btf_trace_kmem_cache_free"))) {
		set_err(err, errlen,
			"--events slab_alloc/slab_free: this kernel has no kmem_cache_alloc/kmem_cache_free "
			"BTF tracepoints; leave them out of --events");
		return -ENOENT;
	}
	if (oom && !kernel_has_tracepoint("btf_trace_mark_victim")) {
		set_err(err, errlen,
			"--events oom_kill: this kernel has no mark_victim BTF tracepoint; leave oom_kill out of --events");
		return -ENOENT;
	}
	for (int i = 0; i < 3; i++) {
		bpf_program__set_autoload(btf_progs[i], want[i] && !classic);
		bpf_program__set_autoload(tp_progs[i], want[i] && classic);
	}
	bpf_program__set_autoload(skel->progs.kmon_slab_alloc, slab_alloc);
	bpf_program__set_autoload(skel->progs.kmon_slab_free, slab_free);
	bpf_program__set_autoload(skel->progs.kmon_oom_victim, oom);
	/* The irq depth only serves memory events. */
	irq_progs_in_order(skel, irq);
	for (int i = 0; i < IRQ_PROGS && !mem; i++)
		bpf_program__set_autoload(irq[i], false);
	return 0;
}

struct loader *loader__new(const struct loader_opts *opts, char *err, size_t errlen)
{
	struct loader *l;
	int ret;

	l = calloc(1, sizeof(*l));
	if (!l) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	l->ncpus = libbpf_num_possible_cpus();
	if (l->ncpus <= 0) {
		set_err(err, errlen, "cannot count possible CPUs: %s", strerror(-l->ncpus));
		ret = l->ncpus;
		goto fail;
	}
	l->skel = kernel_monitor__open();
	if (!l->skel) {
		ret = -errno;
		set_err(err, errlen, "cannot open BPF object: %s", strerror(errno));
		goto fail;
	}
	l->skel->rodata->scope_all = opts->scope_all;
	l->skel->rodata->event_mask = opts->event_mask;
	l->skel->rodata->sample_every = opts->sample_every;
	l->skel->rodata->self_tgid = opts->self_tgid;
	/* While the drain polls (every 10 ms) a wake-up is only a safety net
	 * for a drain that fell behind: one each time an eighth of the ring
	 * waits (15k records of the default 16 MiB, about 11 ms of a 1.3M
	 * events/s flood). Each wake-up is a self-IPI from the producing CPU,
	 * a VM exit: at 64 records they were about a tenth of a tracked kmalloc
	 * loop's time on a 2-vCPU guest, and at 1024 still 5% (issue 18,
	 * target 1: 6,434 against 6,070 ns per iteration with none). */
	l->skel->rodata->wake_bytes = opts->ringbuf_size / 8;
	ret = choose_programs(l->skel, opts->classic_tracepoints, opts->event_mask, err, errlen);
	if (ret)
		goto fail;
	/* The local timer interrupt has its own tracepoint on x86 only. */
	if (!kernel_has_tracepoint("btf_trace_local_timer_entry")) {
		bpf_program__set_autoload(l->skel->progs.kmon_timer_enter, false);
		bpf_program__set_autoload(l->skel->progs.kmon_timer_exit, false);
	}
	{
		struct bpf_program *progs[IRQ_PROGS];

		irq_progs_in_order(l->skel, progs);
		for (int i = 0; i < IRQ_PROGS; i++)
			bpf_program__set_autoattach(progs[i], false);
	}
	ret = bpf_map__set_max_entries(l->skel->maps.events, (__u32)opts->ringbuf_size);
	if (!ret)
		ret = bpf_map__set_max_entries(l->skel->maps.pids, opts->pid_map_size);
	if (!ret && opts->live_map_size)
		ret = bpf_map__set_max_entries(l->skel->maps.live_allocs, opts->live_map_size);
	if (ret) {
		set_err(err, errlen, "cannot size BPF maps: %s", strerror(-ret));
		goto fail;
	}
	ret = kernel_monitor__load(l->skel);
	if (ret) {
		set_err(err, errlen,
			"the kernel refused kmon's BPF programs (%s); run with --log-level debug for the verifier log",
			strerror(-ret));
		goto fail;
	}
	/* irq tracking first, so the first memory event already sees it. */
	ret = attach_irq_progs(l);
	if (!ret)
		ret = kernel_monitor__attach(l->skel);
	if (ret) {
		set_err(err, errlen, "cannot attach kmon's tracepoints: %s", strerror(-ret));
		goto fail;
	}
	return l;
fail:
	loader__free(l);
	errno = -ret;
	return NULL;
}

void loader__detach(struct loader *l)
{
	if (!l || !l->skel)
		return;
	kernel_monitor__detach(l->skel);
	detach_irq_progs(l);
}

void loader__free(struct loader *l)
{
	if (!l)
		return;
	if (l->skel)
		kernel_monitor__detach(l->skel);
	detach_irq_progs(l);
	kernel_monitor__destroy(l->skel);
	free(l);
}

int loader__ringbuf_fd(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.events);
}

volatile uint32_t *loader__drain_polling(const struct loader *l)
{
	return (volatile uint32_t *)&l->skel->bss->drain_polling;
}

int loader__pids_fd(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.pids);
}

static uint64_t prog_recursion_misses(struct bpf_program *prog)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
		return 0;
	return info.recursion_misses;
}

int loader__read_counters(const struct loader *l, struct loader_counters *out)
{
	uint64_t *vals;
	struct bpf_program *prog;
	int fd = bpf_map__fd(l->skel->maps.counters);

	memset(out, 0, sizeof(*out));
	vals = calloc((size_t)l->ncpus, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (__u32 i = 0; i < KMON_CTR_MAX; i++) {
		if (bpf_map_lookup_elem(fd, &i, vals)) {
			int ret = -errno;

			free(vals);
			return ret;
		}
		for (int c = 0; c < l->ncpus; c++)
			out->c[i] += vals[c];
	}
	free(vals);
	bpf_object__for_each_program(prog, l->skel->obj)
		out->recursion_misses += prog_recursion_misses(prog);
	return 0;
}

int loader__track(struct loader *l, uint32_t tgid, uint32_t container_key, uint32_t flags)
{
	struct kmon_pid_info info = { .container_key = container_key, .flags = flags };

	if (bpf_map_update_elem(loader__pids_fd(l), &tgid, &info, BPF_ANY))
		return errno == E2BIG ? -ENOSPC : -errno;
	return 0;
}

int loader__track_many(struct loader *l, const uint32_t *tgids, const struct kmon_pid_info *infos,
		       uint32_t n, uint32_t *n_full)
{
	int fd = loader__pids_fd(l), first = 0, r;
	bool batch = true;
	uint32_t off = 0;

	*n_full = 0;
	while (off < n) {
		__u32 count = n - off;
		LIBBPF_OPTS(bpf_map_batch_opts, o, .elem_flags = BPF_ANY);

		if (batch) {
			if (!bpf_map_update_batch(fd, tgids + off, infos + off, &count, &o)) {
				off += count;
				continue;
			}
			r = -errno;
			/* A kernel without batch updates for hash maps: one by one. */
			if (!count && (r == -EINVAL || r == -EOPNOTSUPP ||
				       r == -524 /* ENOTSUPP */)) {
				batch = false;
				continue;
			}
			off += count > n - off ? n - off : count;
			if (off == n)
				break;
		}
		/* The element the batch stopped at (or every element without
		 * batches), alone: its own error decides what it was. */
		r = loader__track(l, tgids[off], infos[off].container_key, infos[off].flags);
		if (r == -ENOSPC)
			(*n_full)++;
		else if (r && !first)
			first = r;
		off++;
	}
	return first;
}

int loader__untrack(struct loader *l, uint32_t tgid)
{
	if (bpf_map_delete_elem(loader__pids_fd(l), &tgid) && errno != ENOENT)
		return -errno;
	return 0;
}

int loader__map_cgroup(struct loader *l, uint64_t cgroup_id, uint32_t container_key)
{
	if (bpf_map_update_elem(bpf_map__fd(l->skel->maps.cgroup_keys), &cgroup_id,
				&container_key, BPF_ANY))
		return errno == E2BIG ? -ENOSPC : -errno;
	return 0;
}

int loader__unmap_cgroup(struct loader *l, uint64_t cgroup_id)
{
	if (bpf_map_delete_elem(bpf_map__fd(l->skel->maps.cgroup_keys), &cgroup_id) &&
	    errno != ENOENT)
		return -errno;
	return 0;
}

void loader__set_cgroups_mapped(struct loader *l, uint32_t n)
{
	/* Read by the programs on every PID-map miss: a plain store suffices,
	 * a program seeing the old value for a moment only takes the slow or
	 * the fast path once more. */
	*(volatile __u32 *)&l->skel->bss->cgroup_keys_used = n;
}
