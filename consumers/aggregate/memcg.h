/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What a container's memory cgroup says about its kernel memory, read by an
 * unprivileged consumer so the ledger can be set beside the kernel's own
 * accounting. The memory cgroup is found from a pid the container's events
 * carry (/proc/<pid>/cgroup is world-readable), and checked against the
 * event's cgroup v2 id where a v2 hierarchy is mounted, so a pid reused by
 * another process is not taken for the container. cgroup v2: memory.stat
 * (kernel, slab, slab_reclaimable, slab_unreclaimable, sock); cgroup v1:
 * memory.kmem.usage_in_bytes and memory.kmem.tcp.usage_in_bytes (v1 has no
 * slab figure). Every file is read with a size bound and parsed strictly:
 * what does not parse is counted, never trusted.
 */
#ifndef KMON_CONSUMERS_MEMCG_H
#define KMON_CONSUMERS_MEMCG_H

#include <stddef.h>
#include <stdint.h>

#define MEMCG_FILE_MAX (64u * 1024) /* memory.stat is ~2 KiB; more is not a memory.stat */
#define MEMCG_PATH_MAX 1024

enum memcg_have {
	MEMCG_HAVE_KERNEL = 1u << 0,
	MEMCG_HAVE_SLAB = 1u << 1, /* slab, slab_reclaimable, slab_unreclaimable */
	MEMCG_HAVE_SOCK = 1u << 2,
};

struct memcg_kmem {
	unsigned have; /* MEMCG_HAVE_* */
	uint64_t kernel, slab, slab_reclaimable, slab_unreclaimable, sock;
};

struct memcg;

/* proc_root: "/proc"; cgroup_root: where the hierarchies are mounted
 * ("/sys/fs/cgroup"). Finds the layout (v2 alone, or v1 memory with an
 * optional v2 at unified/). NULL + errno when neither has a memory cgroup. */
struct memcg *memcg__new(const char *proc_root, const char *cgroup_root);
void memcg__free(struct memcg *m);
/* "v1" or "v2": which memory cgroup files are read. */
const char *memcg__version(const struct memcg *m);
/* The memory cgroup of pid, as a path under its hierarchy (*path: malloc'd).
 * cgroup_id: the v2 cgroup id of an event of that pid, checked when a v2
 * hierarchy is mounted (0: no check). -ESRCH pid gone, -ESTALE pid is in
 * another cgroup now, -EINVAL the file did not parse. */
int memcg__locate(struct memcg *m, uint32_t pid, uint64_t cgroup_id, char **path);
/* -ENOENT: the cgroup is gone; -EINVAL: a file did not parse (counted). */
int memcg__read(struct memcg *m, const char *path, struct memcg_kmem *out);
/* Files that did not parse or were too large, since memcg__new. */
uint64_t memcg__parse_errors(const struct memcg *m);

/* The parsers, pure (for the tests). memory.stat of v2: 0 or -EINVAL
 * (a malformed line, a duplicate key, a number out of range; out->have
 * says which fields were found). */
int memcg__parse_stat(const char *buf, size_t len, struct memcg_kmem *out);
/* One number and a newline (memory.kmem.usage_in_bytes). */
int memcg__parse_u64(const char *buf, size_t len, uint64_t *out);
/* /proc/<pid>/cgroup: the v1 memory controller's path and the v2 path
 * (either may be "" when absent). 0 or -EINVAL (malformed, "..", too long). */
int memcg__parse_proc_cgroup(const char *buf, size_t len, char *v1_memory, size_t v1_n,
			     char *v2, size_t v2_n);

#endif
