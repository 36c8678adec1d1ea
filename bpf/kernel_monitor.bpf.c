// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kmon's kernel side: memory_alloc / memory_free / slab_alloc / slab_free /
 * process_exec / oom_kill events from
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

/*
 * The live-allocation map: ptr -> the owner of an object a tracked container
 * allocated (kmalloc or slab) and has not freed yet. Every free on the node
 * looks its pointer up here, whatever context frees it (another process, a
 * kworker, an RCU callback, an irq), so the free is charged to the owner.
 *
 * A plain HASH, not an LRU: an LRU evicts silently, and an eviction is an
 * allocation whose free the ledger will never see. Here a full map refuses
 * the insert, which is counted (KMON_CTR_LIVE_FULL); an entry still present
 * when its address is allocated again had its free done on a path without a
 * tracepoint (bulk frees): it is removed, counted (KMON_CTR_LIVE_STALE) and
 * reported as an inferred free charged to its owner (see reap_stale). Preallocated: a hook on kmalloc must not allocate.
 * Sized by the agent's --live-map-size.
 */
struct kmon_live_alloc {
	__u64 call_site;
	__u64 timestamp;
	__u64 cache;         /* struct kmem_cache * of a slab object, else 0 */
	__u32 size;          /* bytes charged (bytes_alloc / the cache's object size) */
	__u32 container_key; /* the owner's */
	__u32 tgid;          /* the owner's */
	__u16 free_type;     /* KMON_EV_MEMORY_FREE or KMON_EV_SLAB_FREE */
	__u16 silent;        /* the alloc event was sampled out or dropped: so is its free */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144); /* --live-map-size */
	__type(key, __u64);
	__type(value, struct kmon_live_alloc);
} live_allocs SEC(".maps");

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

/*
 * The running task's cgroup v2 id and comm. Where the kernel has
 * bpf_get_current_task_btf() (5.11+) its task_struct is a trusted pointer
 * and both are plain loads: the helpers they replace (strscpy_pad for the
 * comm, an RCU section around the cgroup walk) were 35-68 ns of each
 * allocator program's run, 5% of target 1's loop. The values are the same:
 * bpf_get_current_cgroup_id() is task_dfl_cgroup(current)->kn->id, read
 * here under the RCU read section the tracepoint already holds, and the
 * kernel keeps comm NUL-padded (set_task_comm pads it). A rename racing
 * the copy can tear it, as it could the helper's copy; readers never trust
 * comm to be terminated (kmon_event.h). Older kernels take the helpers.
 */
#define HAVE_TASK_BTF bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return t->cgroups->dfl_cgrp->kn->id;
}

static __always_inline __u64 current_cgroup_id(void)
{
	if (HAVE_TASK_BTF)
		return task_cgroup_id(bpf_get_current_task_btf());
	return bpf_get_current_cgroup_id();
}

/* An event's cgroup_id and comm: the task looked up once for both. */
static __always_inline void fill_task(struct kmon_event *e)
{
	if (HAVE_TASK_BTF) {
		struct task_struct *t = bpf_get_current_task_btf();

		e->cgroup_id = task_cgroup_id(t);
		__builtin_memcpy(e->comm, t->comm, KMON_COMM_LEN);
	} else {
		e->cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(e->comm, KMON_COMM_LEN);
	}
}

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
	__u64 cgid = current_cgroup_id();
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
					__u32 key, __u64 ts)
{
	e->timestamp = ts;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->event_type = type;
	e->version = KMON_EVENT_VERSION;
	e->flags = 0;
	e->size = 0;
	fill_task(e);
	e->container_key = key;
	e->reserved = 0;
}

/*
 * Slab caches' names, remembered per CPU, instead of two probe reads (the
 * pointer, then the string) on every slab event for a name that changes
 * only when a cache is destroyed. A slot is keyed by the cache and its name
 * pointer both, so a cache destroyed and another created at the same address
 * (a module reloaded) is read afresh unless it has the very same name string.
 *
 * Per CPU, the only race is nesting: an irq's program interrupting one that
 * is reading or filling the same slot. busy keeps the nested one out (it
 * reads the kernel's string as before); a plain store suffices, since an
 * interrupting context that found busy 0 leaves it 0 again.
 */
#define KMON_CACHE_SLOTS 64

struct kmon_cache_slot {
	__u64 cache;
	__u64 name_ptr;
	__u32 busy;
	char name[KMON_CACHE_NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KMON_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct kmon_cache_slot);
} cache_names SEC(".maps");

#define kmon_barrier() __asm__ __volatile__("" ::: "memory")

/* The name pointer of a cache known only as a number (the live map's copy). */
static __always_inline __u64 cache_name_ptr(__u64 cache)
{
	return cache ? (__u64)BPF_CORE_READ((struct kmem_cache *)cache, name) : 0;
}

/*
 * The slot of a cache the program has as a typed argument. The verifier
 * forbids shifting or masking a pointer, so the index mixes the cache's
 * sizes and flags (plain loads through the trusted pointer); two caches that
 * share a slot only cost a string read, the (cache, name) key keeps names
 * right. KMON_CACHE_SLOTS: a cache known only as a number, never remembered.
 */
static __always_inline __u32 cache_slot(const struct kmem_cache *s)
{
	__u32 h = s->object_size * 0x9E3779B1u ^ s->size * 0x85EBCA77u ^ s->flags;

	return (h ^ (h >> 16)) % KMON_CACHE_SLOTS;
}

/* Writes a kmem_cache's name into dst (KMON_CACHE_NAME_LEN, NUL-padded, cut
 * to fit); name_ptr is the cache's ->name, idx its slot. Nothing for cache 0
 * (kmalloc). */
static __always_inline void cache_name(char *dst, __u64 cache, __u64 name_ptr, __u32 idx)
{
	struct kmon_cache_slot *slot = NULL;

	__builtin_memset(dst, 0, KMON_CACHE_NAME_LEN);
	if (!cache || !name_ptr)
		return;
	if (idx < KMON_CACHE_SLOTS)
		slot = bpf_map_lookup_elem(&cache_names, &idx);
	if (slot && !slot->busy) {
		slot->busy = 1;
		kmon_barrier();
		if (slot->cache == cache && slot->name_ptr == name_ptr) {
			__builtin_memcpy(dst, slot->name, KMON_CACHE_NAME_LEN);
			kmon_barrier();
			slot->busy = 0;
			return;
		}
	} else {
		slot = NULL; /* nested: leave the slot to the context it interrupted */
	}
	if (bpf_probe_read_kernel_str(dst, KMON_CACHE_NAME_LEN, (const char *)name_ptr) < 0)
		dst[0] = '\0';
	if (slot) {
		if (dst[0]) {
			__builtin_memcpy(slot->name, dst, KMON_CACHE_NAME_LEN);
			slot->cache = cache;
			slot->name_ptr = name_ptr;
		}
		kmon_barrier();
		slot->busy = 0;
	}
}

/* A free of a container's object, charged to its owner whatever context
 * runs: pid/tid/comm/cgroup_id are the freeing context's, the rest the
 * owner's allocation. call_site 0 with FREE_INFERRED: no free was seen. */
static __always_inline void emit_owner_free(__u64 p, const struct kmon_live_alloc *live,
					    __u64 call_site, __u64 cache, __u64 name_ptr,
					    __u32 idx, __u16 extra_flags)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 type = live->free_type;
	struct kmon_event *e;
	bool elsewhere;

	elsewhere = (pid_tgid >> 32) != live->tgid || in_irq_context() || extra_flags;
	count(KMON_CTR_FREE_MATCHED);
	if (elsewhere)
		count(KMON_CTR_FREE_ELSEWHERE);
	e = reserve(type);
	if (!e)
		return;
	fill_common(e, type, pid_tgid, live->container_key, bpf_ktime_get_boot_ns());
	e->flags = KMON_EVF_SIZE_KNOWN | KMON_EVF_OWNER_CHARGED |
		   (elsewhere ? KMON_EVF_FREED_ELSEWHERE : 0) | extra_flags;
	e->size = live->size;
	e->data.free.ptr = p;
	e->data.free.call_site = call_site;
	e->data.free.alloc_call_site = live->call_site;
	e->data.free.alloc_timestamp = live->timestamp;
	e->data.free.owner_pid = live->tgid;
	e->data.free.pad = 0;
	if (cache)
		cache_name(e->data.free.cache, cache, name_ptr, idx);
	else
		cache_name(e->data.free.cache, live->cache, cache_name_ptr(live->cache),
			   KMON_CACHE_SLOTS);
	submit(e);
}

/*
 * An allocation at an address the live map still holds: the object there
 * was freed on a path that fires no tracepoint (kmem_cache_free_bulk,
 * kfree_bulk from kfree_rcu batches, slab sheaves). Its owner gets the free
 * now, marked inferred. Runs for every allocation on the node while the
 * ledger is on, or such objects would stay charged for ever.
 */
static __always_inline void reap_stale(__u64 p)
{
	struct kmon_live_alloc *v, live;

	v = bpf_map_lookup_elem(&live_allocs, &p);
	if (!v)
		return;
	live = *v;
	if (bpf_map_delete_elem(&live_allocs, &p))
		return;
	count(KMON_CTR_LIVE_STALE);
	if (!live.silent)
		emit_owner_free(p, &live, 0, 0, 0, KMON_CACHE_SLOTS, KMON_EVF_FREE_INFERRED);
}

/*
 * kmalloc (type memory_alloc) and kmem_cache_alloc (slab_alloc). On 6.18
 * kmalloc() goes through slab_alloc_node() but fires only the kmalloc
 * tracepoint; kmem_cache_alloc fires only from kmem_cache_alloc*() (see the
 * README's "Memory ledger"), so no allocation is seen twice.
 */
static __always_inline int on_alloc(__u32 type, __u64 call_site, __u64 p, __u64 bytes_req,
				    __u64 bytes_alloc, __u32 gfp_flags, __u64 cache, __u64 name_ptr,
				    __u32 idx)
{
	__u32 free_type = type == KMON_EV_SLAB_ALLOC ? KMON_EV_SLAB_FREE : KMON_EV_MEMORY_FREE;
	bool reap = p && (event_mask & (KMON_EV_MASK(KMON_EV_MEMORY_FREE) |
					KMON_EV_MASK(KMON_EV_SLAB_FREE)));
	struct kmon_live_alloc live = {}, *v;
	struct kmon_event *e;
	bool record, silent;
	__u64 pid_tgid, ts;
	long key, err = 0;

	if (!(event_mask & KMON_EV_MASK(type)) && !(event_mask & KMON_EV_MASK(free_type)))
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	key = tracked_key(pid_tgid >> 32);
	if (key >= 0 && in_irq_context()) {
		count(KMON_CTR_IRQ_SKIPPED);
		key = -1;
	}
	/* Recorded even when the alloc event is not delivered (sampled out,
	 * dropped, not asked for): its free is then recognised and dropped
	 * too, instead of being reported as a free of unknown memory. Only a
	 * tracked container's allocations (the map is the ledger of pods),
	 * and a process tracked by name (--pid, key 0 outside --scope all);
	 * not every host process of --scope all, which would fill it. */
	record = key >= 0 && p && (key > 0 || !scope_all) &&
		 (event_mask & KMON_EV_MASK(free_type));
	if (!record) {
		if (reap)
			reap_stale(p);
		if (key < 0)
			return 0;
	}
	silent = !(event_mask & KMON_EV_MASK(type));
	if (!silent && sampled_out()) {
		count(KMON_CTR_SAMPLED_OUT);
		silent = true;
	}
	/* The alloc event's own timestamp is in the live entry: a consumer
	 * pairs the free with it. */
	ts = bpf_ktime_get_boot_ns();
	if (record) {
		live.call_site = call_site;
		live.timestamp = ts;
		live.cache = cache;
		live.size = (__u32)bytes_alloc;
		live.container_key = (__u32)key;
		live.tgid = pid_tgid >> 32;
		live.free_type = (__u16)free_type;
		live.silent = silent;
		/* The insert doubles as the stale check, one hash walk instead of
		 * a lookup then an insert: only an address still held (a free
		 * without a tracepoint) is reaped, before this alloc's record. */
		err = bpf_map_update_elem(&live_allocs, &p, &live, BPF_NOEXIST);
		if (err == -17 /* EEXIST */) {
			reap_stale(p);
			live.timestamp = ts = bpf_ktime_get_boot_ns();
			err = bpf_map_update_elem(&live_allocs, &p, &live, BPF_ANY);
		}
		if (err == 0)
			count(KMON_CTR_LIVE_RECORDED);
		else if (err == -7 /* E2BIG */)
			count(KMON_CTR_LIVE_FULL);
		else
			count(KMON_CTR_SIZEMAP_FAIL);
	}
	if (silent)
		return 0;
	e = reserve(type);
	if (!e) {
		/* Dropped (counted): its free is dropped with it. A free racing
		 * on another CPU in between is reported, with its alloc missing. */
		if (record && err == 0) {
			v = bpf_map_lookup_elem(&live_allocs, &p);
			if (v && v->timestamp == ts)
				v->silent = 1;
		}
		return 0;
	}
	fill_common(e, type, pid_tgid, key, ts);
	e->size = bytes_alloc;
	e->data.mem.ptr = p;
	e->data.mem.call_site = call_site;
	e->data.mem.bytes_req = bytes_req;
	e->data.mem.bytes_alloc = bytes_alloc;
	e->data.mem.gfp_flags = gfp_flags;
	e->data.mem.pad = 0;
	cache_name(e->data.mem.cache, cache, name_ptr, idx);
	submit(e);
	return 0;
}

/*
 * kfree (memory_free) and kmem_cache_free (slab_free). The pointer is looked
 * up in the live map first, for every free on the node and in any context:
 * a hit is a free of a container's object, charged to its owner (type, size
 * and cache from the allocation: kfree() may free a slab object), and
 * nothing is attributed to the task that happens to run. A miss is reported
 * only for a tracked task outside irq context, as a free of unknown size.
 */
static __always_inline int on_free(__u32 type, __u64 call_site, __u64 p, __u64 cache,
				   __u64 name_ptr, __u32 idx)
{
	struct kmon_live_alloc *v, live;
	struct kmon_event *e;
	__u64 pid_tgid;
	long key;

	if (!p)
		return 0;
	v = bpf_map_lookup_elem(&live_allocs, &p);
	if (v) {
		live = *v;
		/* Whoever deletes it owns the free: a racing second lookup
		 * (a double free) finds nothing to charge. */
		if (bpf_map_delete_elem(&live_allocs, &p))
			return 0;
		if (live.silent)
			count(KMON_CTR_SAMPLED_OUT);
		else
			emit_owner_free(p, &live, call_site, cache, name_ptr, idx, 0);
		return 0;
	}
	if (!(event_mask & KMON_EV_MASK(type)))
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	key = tracked_key(pid_tgid >> 32);
	if (key < 0)
		return 0;
	if (in_irq_context()) {
		count(KMON_CTR_IRQ_SKIPPED);
		return 0;
	}
	if (key > 0)
		count(KMON_CTR_FREE_UNKNOWN);
	if (sampled_out()) {
		count(KMON_CTR_SAMPLED_OUT);
		return 0;
	}
	e = reserve(type);
	if (!e)
		return 0;
	fill_common(e, type, pid_tgid, key, bpf_ktime_get_boot_ns());
	__builtin_memset(e->data.raw, 0, KMON_DATA_LEN);
	e->data.free.ptr = p;
	e->data.free.call_site = call_site;
	cache_name(e->data.free.cache, cache, name_ptr, idx);
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
	fill_common(e, KMON_EV_PROCESS_EXEC, pid_tgid, key, bpf_ktime_get_boot_ns());
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
	return on_alloc(KMON_EV_MEMORY_ALLOC, call_site, (__u64)ptr, bytes_req, bytes_alloc,
			(__u32)gfp_flags, 0, 0, KMON_CACHE_SLOTS);
}

SEC("tp_btf/kfree")
int BPF_PROG(kmon_kfree, unsigned long call_site, const void *ptr)
{
	return on_free(KMON_EV_MEMORY_FREE, call_site, (__u64)ptr, 0, 0, KMON_CACHE_SLOTS);
}

/* Slab caches (6.0+ signatures: the cache is an argument, its name and
 * object size read from it). Only as BTF tracepoints: the classic records
 * carry neither the cache nor its name. The charged size is s->size, the
 * slot the object takes (what the memory cgroup is charged for). s is a
 * typed argument the verifier trusts: plain loads, not a probe read each. */
SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(kmon_slab_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s,
	     gfp_t gfp_flags, int node)
{
	return on_alloc(KMON_EV_SLAB_ALLOC, call_site, (__u64)ptr, s->object_size, s->size,
			(__u32)gfp_flags, (__u64)s, (__u64)s->name, cache_slot(s));
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(kmon_slab_free, unsigned long call_site, const void *ptr, const struct kmem_cache *s)
{
	return on_free(KMON_EV_SLAB_FREE, call_site, (__u64)ptr, (__u64)s, (__u64)s->name,
		       cache_slot(s));
}

/*
 * OOM kills. mark_victim fires once per victim the OOM killer chose (after
 * its "already exiting" shortcuts too): the event is emitted in the victim's
 * name, annotated with the victim's container. The oom_control is not an
 * argument, and fentry/out_of_memory, which would give it, cannot attach on
 * every kernel (it fails with EPERM on this project's test kernel), so the
 * memory cgroup whose limit was hit is found from the victim's: the nearest
 * one, walking up, whose usage is at its limit (within a huge page: the
 * charge that failed). None at its limit: a node-wide OOM, memcg_id 0.
 */
#define KMON_OOM_MEMCG_DEPTH 16
#define KMON_OOM_SLACK_PAGES 512

static __always_inline void oom_memcg(struct task_struct *tsk, struct kmon_oom_payload *out)
{
	int mem_id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	struct mem_cgroup *memcg;

	if (mem_id < 0 || mem_id >= 16)
		return;
	memcg = (struct mem_cgroup *)BPF_CORE_READ(tsk, cgroups, subsys[mem_id]);
	for (int i = 0; i < KMON_OOM_MEMCG_DEPTH && memcg; i++) {
		unsigned long max = BPF_CORE_READ(memcg, memory.max);
		long usage = BPF_CORE_READ(memcg, memory.usage.counter);

		/* The root's max is PAGE_COUNTER_MAX: never "at its limit". */
		if (max < (1ul << 50) && usage >= 0 &&
		    (unsigned long)usage + KMON_OOM_SLACK_PAGES >= max) {
			out->memcg_id = BPF_CORE_READ(memcg, css.cgroup, kn, id);
			out->limit_pages = max;
			return;
		}
		/* css is the first member: the parent css is the parent memcg. */
		memcg = (struct mem_cgroup *)BPF_CORE_READ(memcg, css.parent);
	}
}

static __always_inline __u64 mm_rss_pages(struct task_struct *t)
{
	struct mm_struct *mm = BPF_CORE_READ(t, mm);
	long rss = 0, v;

	if (!mm)
		return 0;
	/* get_mm_rss(): file + anon + shmem (percpu counters: their central
	 * count, off by at most a batch per CPU). MM_SWAPENTS (2) is not rss. */
	v = BPF_CORE_READ(mm, rss_stat[0].count); rss += v > 0 ? v : 0;
	v = BPF_CORE_READ(mm, rss_stat[1].count); rss += v > 0 ? v : 0;
	v = BPF_CORE_READ(mm, rss_stat[3].count); rss += v > 0 ? v : 0;
	return rss;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(kmon_oom_victim, struct task_struct *tsk, uid_t uid)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 vtgid = BPF_CORE_READ(tsk, tgid);
	struct kmon_pid_info *info;
	struct kmon_event *e;
	__u64 cgid;
	__u32 *ck;
	long key;

	cgid = BPF_CORE_READ(tsk, cgroups, dfl_cgrp, kn, id);
	info = bpf_map_lookup_elem(&pids, &vtgid);
	if (info)
		key = info->container_key;
	else if ((ck = bpf_map_lookup_elem(&cgroup_keys, &cgid)))
		key = *ck;
	else if (scope_all)
		key = 0;
	else
		return 0;
	e = reserve(KMON_EV_OOM_KILL);
	if (!e)
		return 0;
	fill_common(e, KMON_EV_OOM_KILL, ((__u64)vtgid << 32) | (__u32)BPF_CORE_READ(tsk, pid), key,
		    bpf_ktime_get_boot_ns());
	e->cgroup_id = cgid;
	BPF_CORE_READ_STR_INTO(&e->comm, tsk, comm);
	__builtin_memset(e->data.raw, 0, KMON_DATA_LEN);
	oom_memcg(tsk, &e->data.oom);
	e->data.oom.rss_pages = mm_rss_pages(tsk);
	e->data.oom.killer_pid = pid_tgid >> 32;
	/* Rare and urgent: wake the drain now. */
	bpf_ringbuf_submit(e, 0);
	return 0;
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

		return on_alloc(KMON_EV_MEMORY_ALLOC, a->call_site, (__u64)a->ptr, a->bytes_req,
				a->bytes_alloc, (__u32)a->gfp_flags, 0, 0, KMON_CACHE_SLOTS);
	} else {
		struct trace_event_raw_kmem_alloc___kmon *a = ctx;

		return on_alloc(KMON_EV_MEMORY_ALLOC, a->call_site, (__u64)a->ptr, a->bytes_req,
				a->bytes_alloc, (__u32)a->gfp_flags, 0, 0, KMON_CACHE_SLOTS);
	}
}

SEC("tracepoint/kmem/kfree")
int kmon_kfree_tp(struct trace_event_raw_kfree___kmon *a)
{
	return on_free(KMON_EV_MEMORY_FREE, a->call_site, (__u64)a->ptr, 0, 0, KMON_CACHE_SLOTS);
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
