// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kmon's kernel side: memory_alloc / memory_free / process_exec events from
 * BTF tracepoints (tp_btf needs no tracefs, which many pods do not mount),
 * filtered in the kernel by the PID map, written to one BPF ring buffer.
 * Every decision not to deliver is counted in the "counters" map.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kmon_event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Load-time configuration: the verifier drops branches these disable. */
const volatile bool scope_all = false;
const volatile __u32 event_mask = KMON_EV_MASK_ALL;
const volatile __u32 sample_every = 1; /* 1-in-N for memory events */
const volatile __u32 self_tgid = 0;    /* the agent: tracing it would feed back on itself */
/* Wake the drain only when this much is waiting (0: on every record). A
 * wake-up is an irq_work plus a context switch, many times the cost of the
 * record itself, so memory events wake it in batches; see submit(). */
const volatile __u64 wake_bytes = 0;
/* Set by the drain while it polls on a short timer: then even the first
 * record into an empty ring needs no wake-up. */
volatile __u32 drain_polling = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* overridden by the agent before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* --pid-map-size */
	__type(key, __u32);         /* tgid */
	__type(value, struct kmon_pid_info);
} pids SEC(".maps");

/*
 * cgroup v2 id -> container key, filled by the agent's scans with the
 * containers' own cgroups. A process that enters a container without being
 * a child of a tracked one (kubectl exec, docker exec, nsenter) misses the
 * PID map, but its cgroup is known: it is tracked from its first event.
 * One entry per container; the agent sizes it and counts when it is full.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KMON_CGROUP_MAP_SIZE);
	__type(key, __u64);         /* cgroup v2 id (bpf_get_current_cgroup_id) */
	__type(value, __u32);       /* container key */
} cgroup_keys SEC(".maps");
/* Entries in cgroup_keys, kept by the agent: while 0 (no container has a
 * cgroup v2 of its own, e.g. on a v1 node) a PID-map miss costs nothing more. */
volatile __u32 cgroup_keys_used = 0;

/* ptr -> bytes_alloc of allocations made by tracked processes, so kfree can
 * report the size it releases; LRU so frees we never see cannot fill it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, __u64);
	__type(value, __u64);
} alloc_sizes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KMON_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sample_state SEC(".maps");

/*
 * Irq detection. The obvious source, preempt_count, is a per-CPU variable on
 * x86 that BPF can only reach as a ksym, and kernels without
 * CONFIG_KALLSYMS_ALL (common) cannot resolve it. So the programs below keep
 * their own per-CPU nesting depth of hard irqs, softirqs and the local timer:
 * a memory event seen at depth > 0 was raised on behalf of no task.
 * Plain increments suffice: an interrupting context restores what it found.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} irq_depth SEC(".maps");

static __always_inline void irq_enter(void)
{
	__u32 zero = 0, *d = bpf_map_lookup_elem(&irq_depth, &zero);

	if (d)
		*d += 1;
}

static __always_inline void irq_leave(void)
{
	__u32 zero = 0, *d = bpf_map_lookup_elem(&irq_depth, &zero);

	/* An exit whose entry happened before attach must not underflow. */
	if (d && *d)
		*d -= 1;
}

static __always_inline bool in_irq_context(void)
{
	__u32 zero = 0, *d = bpf_map_lookup_elem(&irq_depth, &zero);

	return d && *d;
}

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(kmon_irq_enter) { irq_enter(); return 0; }
SEC("tp_btf/irq_handler_exit")
int BPF_PROG(kmon_irq_exit) { irq_leave(); return 0; }
SEC("tp_btf/softirq_entry")
int BPF_PROG(kmon_softirq_enter) { irq_enter(); return 0; }
SEC("tp_btf/softirq_exit")
int BPF_PROG(kmon_softirq_exit) { irq_leave(); return 0; }
/* x86 only; the loader disables these where the tracepoint does not exist. */
SEC("tp_btf/local_timer_entry")
int BPF_PROG(kmon_timer_enter) { irq_enter(); return 0; }
SEC("tp_btf/local_timer_exit")
int BPF_PROG(kmon_timer_exit) { irq_leave(); return 0; }

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	/* Atomic even though per-CPU: an irq's program may bump the same slot. */
	if (c)
		__sync_fetch_and_add(c, 1);
}

/* A task the PID map does not know, in a known container cgroup: it
 * entered the container from outside (exec, nsenter). Its tgid goes into
 * the PID map so its later events, and its children, take the fast path. */
static __always_inline long cgroup_key(__u32 tgid)
{
	struct kmon_pid_info info = {};
	__u64 cgid = bpf_get_current_cgroup_id();
	__u32 *key = bpf_map_lookup_elem(&cgroup_keys, &cgid);
	struct task_struct *task;

	if (!key)
		return scope_all ? 0 : -1;
	info.container_key = *key;
	/* A group whose last thread is past exit's accounting (its exit
	 * tracepoint already removed the entry) still frees memory on its way
	 * out: report that, but never put the dying tgid back in the map. */
	task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, signal, live.counter) <= 0)
		return info.container_key;
	info.flags = KMON_PIDF_FROM_CGROUP;
	if (bpf_map_update_elem(&pids, &tgid, &info, BPF_NOEXIST) == 0)
		count(KMON_CTR_CGROUP_TRACKED);
	else if (!bpf_map_lookup_elem(&pids, &tgid))
		count(KMON_CTR_PIDMAP_FULL);
	return info.container_key;
}

/* Returns the container key of a task that should emit, or -1 when filtered.
 * In all scope untracked tasks emit with key 0. */
static __always_inline long tracked_key(__u32 tgid)
{
	struct kmon_pid_info *info;

	if (tgid == self_tgid)
		return -1;
	info = bpf_map_lookup_elem(&pids, &tgid);
	if (info)
		return info->container_key;
	if (cgroup_keys_used)
		return cgroup_key(tgid);
	return scope_all ? 0 : -1;
}

static __always_inline bool sampled_out(void)
{
	__u32 zero = 0, *n;

	if (sample_every <= 1)
		return false;
	n = bpf_map_lookup_elem(&sample_state, &zero);
	if (!n)
		return false;
	if (++*n < sample_every)
		return true;
	*n = 0;
	return false;
}

static __always_inline struct kmon_event *reserve(__u32 type)
{
	struct kmon_event *e;

	count(KMON_CTR_ATTEMPT_BASE + type);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(KMON_CTR_DROP_BASE + type);
		return NULL;
	}
	return e;
}

/*
 * The first record into an empty ring keeps the kernel's adaptive wake-up
 * (the drain is asleep and must learn of it); records joining a backlog
 * below wake_bytes wake nobody; a record that takes the backlog across a
 * multiple of wake_bytes wakes the drain. Only the crossing: a drain that is
 * runnable but waiting for a CPU would otherwise be sent a wake-up (an
 * irq_work, a self-IPI: a VM exit under virtualisation) by every record,
 * which doubled the programs' cost under a flood with 2 busy vCPUs. A
 * crossing missed by two CPUs submitting at once is caught at the next one,
 * and the drain also polls with a short timeout after each busy pass.
 * Exec events follow the same rule: one arriving at an idle agent wakes it
 * at once, and under load it waits at most for the drain's next 10 ms poll
 * (a wake-up per exec cost the agent ~100 us of CPU each on a VM).
 */
static __always_inline void submit(void *e)
{
	__u64 avail, flags = 0;

	if (wake_bytes) {
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		if (avail >= wake_bytes && avail % wake_bytes < KMON_RINGBUF_REC_BYTES)
			flags = BPF_RB_FORCE_WAKEUP;
		else if (drain_polling || avail > KMON_RINGBUF_REC_BYTES)
			flags = BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void fill_common(struct kmon_event *e, __u32 type, __u64 pid_tgid,
					__u32 key)
{
	e->timestamp = bpf_ktime_get_boot_ns();
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->event_type = type;
	e->version = KMON_EVENT_VERSION;
	e->flags = 0;
	e->size = 0;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->container_key = key;
	e->reserved = 0;
}

static __always_inline int on_kmalloc(__u64 call_site, __u64 p, __u64 bytes_req,
				      __u64 bytes_alloc, __u32 gfp_flags)
{
	struct kmon_event *e;
	__u64 pid_tgid;
	long key;

	if (!(event_mask & KMON_EV_MASK(KMON_EV_MEMORY_ALLOC)) &&
	    !(event_mask & KMON_EV_MASK(KMON_EV_MEMORY_FREE)))
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	key = tracked_key(pid_tgid >> 32);
	if (key < 0)
		return 0;
	if (in_irq_context()) {
		count(KMON_CTR_IRQ_SKIPPED);
		return 0;
	}
	/* Remember the size even for sampled-out allocations, so every free we
	 * report carries its size. */
	if (p && (event_mask & KMON_EV_MASK(KMON_EV_MEMORY_FREE)) &&
	    bpf_map_update_elem(&alloc_sizes, &p, &bytes_alloc, BPF_ANY))
		count(KMON_CTR_SIZEMAP_FAIL);
	if (!(event_mask & KMON_EV_MASK(KMON_EV_MEMORY_ALLOC)))
		return 0;
	if (sampled_out()) {
		count(KMON_CTR_SAMPLED_OUT);
		return 0;
	}
	e = reserve(KMON_EV_MEMORY_ALLOC);
	if (!e)
		return 0;
	fill_common(e, KMON_EV_MEMORY_ALLOC, pid_tgid, key);
	e->size = bytes_alloc;
	e->data.mem.ptr = p;
	e->data.mem.call_site = call_site;
	e->data.mem.bytes_req = bytes_req;
	e->data.mem.bytes_alloc = bytes_alloc;
	e->data.mem.gfp_flags = gfp_flags;
	e->data.mem.pad = 0;
	__builtin_memset(&e->data.raw[40], 0, KMON_DATA_LEN - 40);
	submit(e);
	return 0;
}

static __always_inline int on_kfree(__u64 call_site, __u64 p)
{
	__u64 pid_tgid, size = 0, *known;
	struct kmon_event *e;
	__u16 flags = 0;
	long key;

	if (!(event_mask & KMON_EV_MASK(KMON_EV_MEMORY_FREE)) || !p)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	key = tracked_key(pid_tgid >> 32);
	if (key < 0)
		return 0;
	known = bpf_map_lookup_elem(&alloc_sizes, &p);
	if (known) {
		size = *known;
		flags = KMON_EVF_SIZE_KNOWN;
		bpf_map_delete_elem(&alloc_sizes, &p);
	}
	if (in_irq_context()) {
		count(KMON_CTR_IRQ_SKIPPED);
		return 0;
	}
	if (sampled_out()) {
		count(KMON_CTR_SAMPLED_OUT);
		return 0;
	}
	e = reserve(KMON_EV_MEMORY_FREE);
	if (!e)
		return 0;
	fill_common(e, KMON_EV_MEMORY_FREE, pid_tgid, key);
	e->flags = flags;
	e->size = size;
	__builtin_memset(e->data.raw, 0, KMON_DATA_LEN);
	e->data.mem.ptr = p;
	e->data.mem.call_site = call_site;
	submit(e);
	return 0;
}

/* The helper returns the bytes copied counting the NUL: a full buffer (len)
 * is either a name of exactly len - 1 bytes, which fits, or a longer one cut
 * to that. The kernel's byte at len - 1 tells them apart (a NUL: it fitted);
 * if it cannot be read, the name is reported as possibly cut. */
static __always_inline bool fits(const void *str, __u32 len)
{
	char c = 1;

	if (bpf_probe_read_kernel(&c, 1, (const char *)str + len - 1))
		return false;
	return c == '\0';
}

static __always_inline int on_exec(const void *filename)
{
	struct kmon_event *e;
	__u64 pid_tgid;
	long key, n;

	if (!(event_mask & KMON_EV_MASK(KMON_EV_PROCESS_EXEC)))
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	key = tracked_key(pid_tgid >> 32);
	if (key < 0)
		return 0;
	e = reserve(KMON_EV_PROCESS_EXEC);
	if (!e)
		return 0;
	fill_common(e, KMON_EV_PROCESS_EXEC, pid_tgid, key);
	n = bpf_probe_read_kernel_str(e->data.filename, sizeof(e->data.filename), filename);
	if (n < 0)
		e->data.filename[0] = '\0';
	else if (n == sizeof(e->data.filename) && !fits(filename, sizeof(e->data.filename)))
		e->flags |= KMON_EVF_TRUNCATED;
	submit(e);
	return 0;
}

/* BTF tracepoints, the default: typed arguments, no tracefs needed.
 * kmalloc's argument order (call_site, ptr, bytes_req, bytes_alloc, gfp_flags,
 * ...) is the same from 4.x to 6.18; 6.1 only appended node when
 * kmalloc_node merged in. */
SEC("tp_btf/kmalloc")
int BPF_PROG(kmon_kmalloc, unsigned long call_site, const void *ptr, size_t bytes_req,
	     size_t bytes_alloc, unsigned long gfp_flags)
{
	return on_kmalloc(call_site, (__u64)ptr, bytes_req, bytes_alloc, (__u32)gfp_flags);
}

SEC("tp_btf/kfree")
int BPF_PROG(kmon_kfree, unsigned long call_site, const void *ptr)
{
	return on_kfree(call_site, (__u64)ptr);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(kmon_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(BPF_CORE_READ(bprm, filename));
}

/*
 * Classic tracepoints (--attach tracepoint): need tracefs, cost a little more
 * per event; kept for comparison and for kernels where tp_btf misbehaves.
 * kmalloc's record was struct trace_event_raw_kmem_alloc before 6.1 and
 * trace_event_raw_kmalloc since: CO-RE picks whichever the kernel has.
 */
struct trace_event_raw_kmalloc___kmon {
	unsigned long call_site;
	const void *ptr;
	size_t bytes_req;
	size_t bytes_alloc;
	unsigned long gfp_flags;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_alloc___kmon {
	unsigned long call_site;
	const void *ptr;
	size_t bytes_req;
	size_t bytes_alloc;
	unsigned long gfp_flags;
} __attribute__((preserve_access_index));

struct trace_event_raw_kfree___kmon {
	unsigned long call_site;
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_sched_process_exec___kmon {
	__u32 __data_loc_filename;
} __attribute__((preserve_access_index));

SEC("tracepoint/kmem/kmalloc")
int kmon_kmalloc_tp(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_kmalloc___kmon)) {
		struct trace_event_raw_kmalloc___kmon *a = ctx;

		return on_kmalloc(a->call_site, (__u64)a->ptr, a->bytes_req, a->bytes_alloc,
				  (__u32)a->gfp_flags);
	} else {
		struct trace_event_raw_kmem_alloc___kmon *a = ctx;

		return on_kmalloc(a->call_site, (__u64)a->ptr, a->bytes_req, a->bytes_alloc,
				  (__u32)a->gfp_flags);
	}
}

SEC("tracepoint/kmem/kfree")
int kmon_kfree_tp(struct trace_event_raw_kfree___kmon *a)
{
	return on_kfree(a->call_site, (__u64)a->ptr);
}

SEC("tracepoint/sched/sched_process_exec")
int kmon_exec_tp(struct trace_event_raw_sched_process_exec___kmon *a)
{
	/* __data_loc: low 16 bits are the string's offset in the record. */
	return on_exec((const char *)a + (a->__data_loc_filename & 0xffff));
}

/* A child of a tracked process is tracked from its first instruction, so
 * nothing it does before the next /proc scan is missed. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(kmon_fork, struct task_struct *parent, struct task_struct *child)
{
	struct kmon_pid_info *pinfo, cinfo = {};
	__u32 ptgid, ctgid;

	ptgid = BPF_CORE_READ(parent, tgid);
	ctgid = BPF_CORE_READ(child, tgid);
	if (ptgid == ctgid) /* a new thread: its tgid is already tracked */
		return 0;
	pinfo = bpf_map_lookup_elem(&pids, &ptgid);
	if (!pinfo)
		return 0;
	cinfo.container_key = pinfo->container_key;
	cinfo.flags = KMON_PIDF_FROM_FORK;
	if (bpf_map_update_elem(&pids, &ctgid, &cinfo, BPF_NOEXIST) == 0)
		count(KMON_CTR_FORK_TRACKED);
	else if (!bpf_map_lookup_elem(&pids, &ctgid))
		count(KMON_CTR_PIDMAP_FULL);
	return 0;
}

/*
 * The PID map entry goes only when the whole thread group is dead. The leader
 * exiting is not enough: main() may pthread_exit() while other threads run,
 * and an execve() from a non-leader thread kills the old leader first (its
 * exit fires here before the exec, and the exec'ing thread then takes over
 * the tgid). do_exit() has decremented signal->live before this tracepoint,
 * so 0 means every thread of the group is past that point. Two last threads
 * exiting together may both see 0: the second delete is a no-op.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(kmon_exit, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	int live = BPF_CORE_READ(p, signal, live.counter);

	if (live > 0)
		return 0;
	if (bpf_map_delete_elem(&pids, &tgid) == 0)
		count(KMON_CTR_EXIT_UNTRACKED);
	return 0;
}
