/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one record the kernel programs write and every user-space part reads.
 * Included by BPF C (after vmlinux.h) and by user C (after <linux/types.h>),
 * so it includes nothing itself and uses only __u8/__u16/__u32/__u64.
 *
 * Layout, version 2 (128 bytes, packed, every field naturally aligned):
 *
 *   off size field
 *     0    8 timestamp      bpf_ktime_get_boot_ns(): ns since boot (CLOCK_BOOTTIME)
 *     8    4 pid            thread-group id (the user-visible PID)
 *    12    4 tid            thread id
 *    16    4 event_type     enum kmon_event_type
 *    20    2 version        KMON_EVENT_VERSION
 *    22    2 flags          KMON_EVF_*
 *    24    8 size           memory_alloc: bytes allocated; memory_free: bytes of that
 *                           allocation if known, else 0; process_exec: 0
 *    32    8 cgroup_id      cgroup v2 id of the task (bpf_get_current_cgroup_id)
 *    40   16 comm           task comm, NUL-padded by the kernel but not trusted to be
 *                           NUL-terminated by readers
 *    56   64 data           union kmon_payload
 *   120    4 container_key  key of the container the task belongs to, as stored in
 *                           the PID map (0 = not a tracked container)
 *   124    4 reserved       0
 *
 * The first 108 bytes minus cgroup_id/version/flags are the fields of the seed
 * record; new fields only ever get appended, and event_type numbers only grow.
 *
 * Version 2 (the memory ledger) appended, without moving a v1 field:
 *  - event types slab_alloc / slab_free (kmem_cache_alloc / kmem_cache_free)
 *    and oom_kill;
 *  - mem.cache: the slab cache's name (slab events), in the payload's spare
 *    24 bytes;
 *  - struct kmon_free_payload: a free matched in the kernel's live-allocation
 *    map carries the owner's allocation call site and tgid, whatever context
 *    freed it (KMON_EVF_OWNER_CHARGED, KMON_EVF_FREED_ELSEWHERE);
 *  - KMON_EVF_ADDR_OPAQUE: the agent replaced ptr and call_site by values that
 *    reveal no kernel address (see below), the default for consumers.
 */
#ifndef KMON_EVENT_H
#define KMON_EVENT_H

#define KMON_EVENT_VERSION 2
#define KMON_COMM_LEN 16
#define KMON_DATA_LEN 64
#define KMON_FILENAME_LEN KMON_DATA_LEN
#define KMON_CACHE_NAME_LEN 24 /* slab cache name, NUL-padded, cut to fit */

enum kmon_event_type {
	KMON_EV_MEMORY_ALLOC = 1,
	KMON_EV_MEMORY_FREE = 2,
	KMON_EV_PROCESS_EXEC = 3,
	KMON_EV_SLAB_ALLOC = 4, /* kmem_cache_alloc: size = the cache's object size */
	KMON_EV_SLAB_FREE = 5,  /* kmem_cache_free */
	KMON_EV_OOM_KILL = 6,   /* the OOM killer chose a victim: data.oom */
	KMON_EV_TYPE_MAX = 6,
};

/* Bit n set = event type n enabled (bit 0 unused). */
#define KMON_EV_MASK(t) (1u << (t))
#define KMON_EV_MASK_ALL                                                                   \
	(KMON_EV_MASK(1) | KMON_EV_MASK(2) | KMON_EV_MASK(3) | KMON_EV_MASK(4) |           \
	 KMON_EV_MASK(5) | KMON_EV_MASK(6))

enum kmon_event_flags {
	/* exec filename filled the payload: it may have been cut (kmon's programs
	 * still NUL-terminate it; readers must not rely on that) */
	KMON_EVF_TRUNCATED = 1u << 0,
	/* memory_free: the allocation was made by a tracked process and size is exact */
	KMON_EVF_SIZE_KNOWN = 1u << 1,
	/* memory_free / slab_free: the pointer was found in the live-allocation
	 * map; container_key, size and data.free.alloc_* are the owner's (the
	 * container that allocated it), not the freeing task's */
	KMON_EVF_OWNER_CHARGED = 1u << 2,
	/* with OWNER_CHARGED: the freeing context is not the owner's process
	 * (another process, a kworker, an RCU callback, an irq: then pid, tid and
	 * comm are the interrupted task's and mean nothing) */
	KMON_EVF_FREED_ELSEWHERE = 1u << 3,
	/* set by the agent: data.mem.ptr is an opaque per-boot id of the pointer
	 * (keyed, so an allocation and its free carry the same id) and every call
	 * site is a symbol reference: (symbol id << 32) | offset into the symbol,
	 * symbol id indexing the table handed over at attach, 0 = not resolved */
	KMON_EVF_ADDR_OPAQUE = 1u << 4,
	/* with OWNER_CHARGED (v2, set by the kernel side): no free was seen; the
	 * address was allocated again, so the object was freed on a path that
	 * fires no tracepoint (kmem_cache_free_bulk, kfree_rcu batches, slab
	 * sheaves). call_site is 0; pid/tid/comm are the new allocator's. */
	KMON_EVF_FREE_INFERRED = 1u << 5,
};

struct kmon_mem_payload {
	__u64 ptr;
	__u64 call_site;
	__u64 bytes_req;   /* memory_alloc only */
	__u64 bytes_alloc; /* memory_alloc only */
	__u32 gfp_flags;   /* memory_alloc only */
	__u32 pad;
	char cache[KMON_CACHE_NAME_LEN]; /* slab events: kmem_cache name (v2) */
} __attribute__((packed));

/* memory_free / slab_free (v2). ptr, call_site and cache sit where they sit
 * in kmon_mem_payload, so a v1 reader of data.mem still reads them right. */
struct kmon_free_payload {
	__u64 ptr;
	__u64 call_site;       /* the freeing function */
	__u64 alloc_call_site; /* OWNER_CHARGED: the allocating function, else 0 */
	__u64 alloc_timestamp; /* OWNER_CHARGED: the allocation's timestamp, else 0 */
	__u32 owner_pid;       /* OWNER_CHARGED: tgid that allocated, else 0 */
	__u32 pad;
	char cache[KMON_CACHE_NAME_LEN];
} __attribute__((packed));

/* oom_kill (v2). The record's pid/tid/comm/cgroup_id/container_key are the
 * victim's, so the event is annotated with the victim's pod. */
struct kmon_oom_payload {
	__u64 memcg_id;    /* cgroup id of the memory cgroup whose limit was hit; 0: node-wide OOM */
	__u64 limit_pages; /* pages the OOM killer worked against (the limit or all RAM) */
	__u64 rss_pages;   /* victim's resident pages when chosen */
	__u32 killer_pid;  /* tgid of the task that ran the OOM killer */
	__u32 pad;
	__u8 reserved[32];
} __attribute__((packed));

union kmon_payload {
	struct kmon_mem_payload mem;
	struct kmon_free_payload free;
	struct kmon_oom_payload oom;
	char filename[KMON_FILENAME_LEN]; /* process_exec */
	__u8 raw[KMON_DATA_LEN];
};

struct kmon_event {
	__u64 timestamp;
	__u32 pid;
	__u32 tid;
	__u32 event_type;
	__u16 version;
	__u16 flags;
	__u64 size;
	__u64 cgroup_id;
	char comm[KMON_COMM_LEN];
	union kmon_payload data;
	__u32 container_key;
	__u32 reserved;
} __attribute__((packed));

/*
 * Value of the PID map (tgid -> this). Written by the agent after a /proc scan, by
 * the fork program for children of tracked processes, and by the event programs for
 * a task in a container cgroup the agent put in the cgroup map.
 */
struct kmon_pid_info {
	__u32 container_key;
	__u32 flags; /* KMON_PIDF_* */
};

enum kmon_pid_flags {
	KMON_PIDF_FROM_SCAN = 1u << 0, /* put there by a /proc scan */
	KMON_PIDF_FROM_FORK = 1u << 1, /* inherited in the kernel at fork */
	KMON_PIDF_FROM_CGROUP = 1u << 2, /* entered a known container cgroup (exec, nsenter) */
};

/* Entries of the cgroup map (cgroup v2 id -> container key): one per
 * container with a cgroup v2 of its own. Preallocated (older kernels allow
 * nothing else in tracing programs): about 100 bytes each. */
#define KMON_CGROUP_MAP_SIZE 8192

/* What one event takes in the BPF ring buffer: the record plus the kernel's
 * 8-byte header, 8-aligned. The wake-up thresholds are counted in these. */
#define KMON_RINGBUF_REC_BYTES ((sizeof(struct kmon_event) + 8 + 7) & ~7ul)

/*
 * Per-CPU counters (array map "counters", index = enum value). Every path in the
 * programs that decides not to deliver an event bumps one of these, so
 * delivered + dropped + filtered accounts for every attempt.
 */
enum kmon_counter {
	KMON_CTR_ATTEMPT_BASE = 0,  /* + event_type: records we tried to reserve */
	KMON_CTR_DROP_BASE = 8,     /* + event_type: reserve failed (ring buffer full) */
	KMON_CTR_IRQ_SKIPPED = 16,  /* memory event in irq/softirq/nmi: not attributed */
	KMON_CTR_SAMPLED_OUT = 17,  /* memory event skipped by 1-in-N sampling */
	KMON_CTR_PIDMAP_FULL = 18,  /* fork: child could not be added to the PID map */
	KMON_CTR_SIZEMAP_FAIL = 19, /* live map insert failed for a reason other than full */
	KMON_CTR_FORK_TRACKED = 20, /* children tracked in the kernel at fork */
	KMON_CTR_EXIT_UNTRACKED = 21, /* tracked processes whose last thread exited */
	KMON_CTR_CGROUP_TRACKED = 22, /* tasks tracked in the kernel by their container cgroup */
	/* 23..31: the memory ledger's own health (live-allocation map) */
	KMON_CTR_LIVE_RECORDED = 23, /* allocations recorded in the live map */
	KMON_CTR_FREE_MATCHED = 24,  /* frees found in it: charged to the owner */
	KMON_CTR_FREE_ELSEWHERE = 25, /* of those, freed outside the owner's process (or in irq) */
	KMON_CTR_FREE_UNKNOWN = 26,  /* a tracked container's free of memory not in the map */
	KMON_CTR_LIVE_FULL = 27,     /* allocation not recorded: live map full (its free will be unknown) */
	KMON_CTR_LIVE_STALE = 28,    /* entry found at an allocation: its free happened where no
				      * tracepoint fires (bulk frees); reported as an inferred free */
	KMON_CTR_MAX = 32,
};

#ifndef __bpf__
_Static_assert(sizeof(struct kmon_mem_payload) == KMON_DATA_LEN, "mem payload layout");
_Static_assert(sizeof(struct kmon_free_payload) == KMON_DATA_LEN, "free payload layout");
_Static_assert(sizeof(struct kmon_oom_payload) == KMON_DATA_LEN, "oom payload layout");
_Static_assert(__builtin_offsetof(struct kmon_mem_payload, cache) == 40, "cache offset");
_Static_assert(__builtin_offsetof(struct kmon_free_payload, cache) == 40, "free cache offset");
_Static_assert((int)KMON_CTR_DROP_BASE > (int)KMON_EV_TYPE_MAX, "attempt counters overlap drops");
_Static_assert((int)KMON_CTR_IRQ_SKIPPED > (int)KMON_CTR_DROP_BASE + (int)KMON_EV_TYPE_MAX, "drop counters overlap");
_Static_assert(sizeof(union kmon_payload) == KMON_DATA_LEN, "payload layout");
_Static_assert(sizeof(struct kmon_event) == 128, "kmon_event layout");
_Static_assert(__builtin_offsetof(struct kmon_event, size) == 24, "size offset");
_Static_assert(__builtin_offsetof(struct kmon_event, cgroup_id) == 32, "cgroup_id offset");
_Static_assert(__builtin_offsetof(struct kmon_event, comm) == 40, "comm offset");
_Static_assert(__builtin_offsetof(struct kmon_event, data) == 56, "data offset");
_Static_assert(__builtin_offsetof(struct kmon_event, container_key) == 120, "key offset");
#endif

#endif /* KMON_EVENT_H */
