// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The kernel memory ledger (consumers/ledger.c) and its place in
 * kmon-aggregate's table, driven by synthetic event sequences of the v2
 * record: owner-charged frees from the owner and from elsewhere, frees the
 * kernel did not match, frees of allocations older than the ledger, top-K +
 * other, a hostile flood of call sites and caches against the memory bound,
 * expiry of an exited container. And the memory cgroup reader on real files
 * (tests/fixtures/memcg) and on hostile ones. The /metrics text is written to
 * argv[1] when given, for `promtool check metrics` (unit_ledger_promtool).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "consumers/aggregate/aggtable.h"
#include "consumers/ledger/ledger.h"
#include "consumers/aggregate/memcg.h"
#include "shm/common/metrics_text.h"
#include "consumers/top/toptable.h"
#include "shm/meta.h"
#include "slurp.h"
#include "kmeta.h"

static const char *metrics_out;
static uint64_t ts = 1000;

static struct kmon_event alloc_ev(uint32_t type, uint32_t key, uint64_t site, uint64_t size,
				  const char *cache)
{
	struct kmon_event e;

	memset(&e, 0, sizeof(e));
	e.timestamp = ts++;
	e.pid = 100 + key;
	e.tid = e.pid;
	e.event_type = type;
	e.version = KMON_EVENT_VERSION;
	e.size = size;
	e.container_key = key;
	e.data.mem.call_site = site;
	e.data.mem.ptr = 0xffff888000000000ull + ts * 64;
	if (cache)
		memcpy(e.data.mem.cache, cache, strnlen(cache, KMON_CACHE_NAME_LEN));
	return e;
}

/* A free the kernel matched to the allocation a (flags: + FREED_ELSEWHERE). */
static struct kmon_event charged_free(const struct kmon_event *a, uint16_t flags)
{
	struct kmon_event e;

	memset(&e, 0, sizeof(e));
	e.timestamp = ts++;
	e.pid = flags & KMON_EVF_FREED_ELSEWHERE ? 0 : a->pid; /* e.g. an RCU callback in softirq */
	e.event_type = a->event_type == KMON_EV_SLAB_ALLOC ? KMON_EV_SLAB_FREE : KMON_EV_MEMORY_FREE;
	e.version = KMON_EVENT_VERSION;
	e.flags = KMON_EVF_OWNER_CHARGED | KMON_EVF_SIZE_KNOWN | flags;
	e.size = a->size;
	e.container_key = a->container_key; /* the owner's */
	e.data.free.ptr = a->data.mem.ptr;
	e.data.free.call_site = 0xffffffff81234567ull;
	e.data.free.alloc_call_site = a->data.mem.call_site;
	e.data.free.alloc_timestamp = a->timestamp;
	e.data.free.owner_pid = a->pid;
	memcpy(e.data.free.cache, a->data.mem.cache, KMON_CACHE_NAME_LEN);
	return e;
}

static void test_charged_frees(void **state)
{
	struct ledger *l = ledger__new(10);
	struct kmon_event a = alloc_ev(KMON_EV_SLAB_ALLOC, 1, 0xffffffff81000010ull, 192, "dentry");
	struct kmon_event b = alloc_ev(KMON_EV_MEMORY_ALLOC, 1, 0xffffffff81000020ull, 64, NULL);
	struct kmon_event f;

	(void)state;
	assert_non_null(l);
	assert_int_equal(ledger__add(l, &a), LEDGER_ALLOC);
	assert_int_equal(ledger__add(l, &b), LEDGER_ALLOC);
	assert_int_equal(ledger__bytes(l), 256);
	assert_int_equal(ledger__objects(l), 2);
	/* The dentry is freed by RCU in softirq: charged back to its owner. */
	f = charged_free(&a, KMON_EVF_FREED_ELSEWHERE);
	assert_int_equal(ledger__add(l, &f), LEDGER_FREE_ELSEWHERE);
	assert_int_equal(ledger__bytes(l), 64);
	/* A free the kernel did not match subtracts nothing. */
	f = charged_free(&b, 0);
	f.flags = 0;
	f.size = 0;
	assert_int_equal(ledger__add(l, &f), LEDGER_FREE_UNMATCHED);
	assert_int_equal(ledger__bytes(l), 64);
	f = charged_free(&b, 0);
	assert_int_equal(ledger__add(l, &f), LEDGER_FREE_CHARGED);
	assert_int_equal(ledger__bytes(l), 0);
	assert_int_equal(ledger__objects(l), 0);
	/* A matched free of an allocation older than the ledger: nothing to
	 * subtract it from (it would push the ledger below what it saw). */
	b.timestamp = 1;
	f = charged_free(&b, 0);
	assert_int_equal(ledger__add(l, &f), LEDGER_FREE_UNSEEN);
	assert_int_equal(ledger__bytes(l), 0);
	ledger__free(l);
}

static void test_top_k_other(void **state)
{
	struct ledger *l = ledger__new(2);
	struct ledger_row rows[3];
	struct kmon_event e, keep;
	uint64_t sum = 0;
	size_t n, i;

	(void)state;
	/* Five sites holding 100, 200, 300, 400, 500 bytes in five caches. */
	for (i = 1; i <= 5; i++) {
		char cache[16];
		snprintf(cache, sizeof(cache), "cache-%zu", i);
		e = alloc_ev(KMON_EV_SLAB_ALLOC, 1, 0x1000 * i, 100 * i, cache);
		assert_int_equal(ledger__add(l, &e), LEDGER_ALLOC);
		if (i == 1)
			keep = e;
	}
	n = ledger__sites(l, rows, NULL, NULL);
	assert_int_equal(n, 3);
	assert_string_equal(rows[0].label, "0x5000");
	assert_int_equal(rows[0].bytes, 500);
	assert_string_equal(rows[1].label, "0x4000");
	assert_string_equal(rows[2].label, LEDGER_OTHER);
	assert_int_equal(rows[2].bytes, 600);
	assert_int_equal(rows[2].objects, 3);
	n = ledger__caches(l, rows);
	assert_int_equal(n, 3);
	assert_string_equal(rows[0].label, "cache-5");
	assert_int_equal(rows[2].bytes, 600);
	for (i = 0; i < n; i++)
		sum += rows[i].bytes;
	assert_int_equal(sum, ledger__bytes(l));
	/* The smallest is freed: "other" shrinks by it. */
	e = charged_free(&keep, 0);
	ledger__add(l, &e);
	n = ledger__sites(l, rows, NULL, NULL);
	assert_int_equal(rows[2].bytes, 500);
	/* Opaque call sites (symbol id << 32 | offset) until the agent's table
	 * names them; a namer takes over when given. */
	{
		char buf[64];
		ledger__site_name(7ull << 32 | 0x1c, true, NULL, NULL, buf, sizeof(buf));
		assert_string_equal(buf, "sym7+0x1c");
		ledger__site_name(0, false, NULL, NULL, buf, sizeof(buf));
		assert_string_equal(buf, "-");
	}
	ledger__free(l);
}

/* A cache name ends at its NUL: whatever the record holds after it (the BPF
 * side copies the name with a string read into reserved, not zeroed, space)
 * is no part of it. Allocations and frees with different leftovers are one
 * cache, and a free comes out of that cache, not "other". */
static void test_cache_name_ends_at_nul(void **state)
{
	struct ledger *l = ledger__new(4);
	struct ledger_row rows[5];
	struct kmon_event a, b, f;
	size_t n;

	(void)state;
	a = alloc_ev(KMON_EV_SLAB_ALLOC, 1, 0x1000, 64, "kmalloc-64");
	memcpy(a.data.mem.cache + 11, "AAAAAAA", 7);
	b = alloc_ev(KMON_EV_SLAB_ALLOC, 1, 0x1000, 64, "kmalloc-64");
	memcpy(b.data.mem.cache + 11, "BBBBBBB", 7);
	assert_int_equal(ledger__add(l, &a), LEDGER_ALLOC);
	assert_int_equal(ledger__add(l, &b), LEDGER_ALLOC);
	for (int freed = 0; freed <= 1; freed++) {
		if (freed) {
			f = charged_free(&a, 0);
			memcpy(f.data.free.cache + 11, "CCCCCCC", 7);
			assert_int_equal(ledger__add(l, &f), LEDGER_FREE_CHARGED);
		}
		n = ledger__caches(l, rows);
		assert_int_equal(n, 1);
		assert_string_equal(rows[0].label, "kmalloc-64");
		assert_int_equal(rows[0].bytes, 128 - 64 * freed);
		assert_int_equal(rows[0].objects, 2 - freed);
	}
	/* Sites: opaque and raw references with the same number are two sites. */
	a = alloc_ev(KMON_EV_SLAB_ALLOC, 1, 0x1000, 32, "dentry");
	a.flags |= KMON_EVF_ADDR_OPAQUE;
	assert_int_equal(ledger__add(l, &a), LEDGER_ALLOC);
	n = ledger__sites(l, rows, NULL, NULL);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].label, "0x1000");
	assert_int_equal(rows[0].bytes, 64);
	assert_string_equal(rows[1].label, "unresolved+0x1000");
	assert_int_equal(rows[1].bytes, 32);
	ledger__free(l);
}

/* A hostile workload: a million distinct call sites and cache names. The
 * ledger keeps 2K candidates, folds the rest into "other" (counted), and its
 * breakdown still adds up to its total. */
static void test_bound(void **state)
{
	struct ledger *l = ledger__new(3);
	struct ledger_row rows[4];
	struct kmon_event e;
	uint64_t sum = 0;
	size_t n, i;

	(void)state;
	for (i = 0; i < 1000000; i++) {
		char cache[24];
		snprintf(cache, sizeof(cache), "evil-%zu\x01\xff", i);
		e = alloc_ev(KMON_EV_SLAB_ALLOC, 1, 0xffffffff80000000ull + i * 8, 32 + i % 7, cache);
		ledger__add(l, &e);
	}
	assert_true(ledger__folded(l) >= 2 * (1000000 - 6));
	assert_int_equal(ledger__objects(l), 1000000);
	n = ledger__sites(l, rows, NULL, NULL);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++)
		sum += rows[i].bytes;
	assert_int_equal(sum, ledger__bytes(l));
	n = ledger__caches(l, rows);
	for (i = 0; i < n; i++) /* labels stay printable */
		assert_null(strpbrk(rows[i].label, "\x01\xff"));
	assert_true(ledger__footprint(3) < 1024);
	ledger__free(l);
}

static void test_aggtable_ledger(void **state)
{
	struct aggtable *t = aggtable__new(100, 5);
	struct metrics_text *m = metrics_text__new();
	struct kmon_meta leaky = meta(1, "shop", "leaky-0", "app"), gone = meta(2, "shop", "gone-0", "app");
	struct kmon_event a[4], e;
	const char *data;
	int i;

	(void)state;
	assert_non_null(t);
	assert_int_equal(aggtable__set_ledger(t, 2, NULL, NULL), 0);
	assert_int_equal(aggtable__set_ledger(t, 0, NULL, NULL), -EINVAL);
	for (i = 0; i < 4; i++) {
		a[i] = alloc_ev(i < 2 ? KMON_EV_SLAB_ALLOC : KMON_EV_MEMORY_ALLOC, 1,
				0xffffffff81100000ull + (uint64_t)i * 0x100, 1000, i < 2 ? "shmem_inode_cache" : NULL);
		aggtable__add(t, &a[i], &leaky, 10);
	}
	/* Freed by another process: charged to leaky-0 although the freeing
	 * task belongs to no container (meta is the owner's, as the client
	 * annotates by the event's container key). */
	e = charged_free(&a[0], KMON_EVF_FREED_ELSEWHERE);
	aggtable__add(t, &e, &leaky, 11);
	e = charged_free(&a[2], 0);
	e.flags = 0; /* unmatched */
	aggtable__add(t, &e, &leaky, 11);
	e = alloc_ev(KMON_EV_OOM_KILL, 1, 0, 0, NULL);
	aggtable__add(t, &e, &leaky, 12);
	aggtable__add(t, &e, &leaky, 12);
	/* gone-0 leaks 4096 bytes and exits: no more events of its own. */
	a[0] = alloc_ev(KMON_EV_MEMORY_ALLOC, 2, 0xffffffff81200000ull, 4096, NULL);
	aggtable__add(t, &a[0], &gone, 20);
	assert_int_equal(aggtable__write_metrics(t, m), 0);
	data = metrics_text__data(m, NULL);
	assert_non_null(strstr(data, "kmon_ledger_outstanding_bytes{namespace=\"shop\",pod=\"leaky-0\",container=\"app\"} 3000\n"));
	assert_non_null(strstr(data, "kmon_ledger_outstanding_objects{namespace=\"shop\",pod=\"leaky-0\",container=\"app\"} 3\n"));
	assert_non_null(strstr(data, "kmon_ledger_outstanding_bytes_by_cache{namespace=\"shop\",pod=\"leaky-0\",container=\"app\",cache=\"kmalloc\"} 2000\n"));
	assert_non_null(strstr(data, "kmon_ledger_outstanding_bytes_by_cache{namespace=\"shop\",pod=\"leaky-0\",container=\"app\",cache=\"shmem_inode_cache\"} 1000\n"));
	/* K = 2 of three sites holding 1000 each: two named, one in other. */
	assert_non_null(strstr(data, "kmon_ledger_outstanding_bytes_by_site{namespace=\"shop\",pod=\"leaky-0\",container=\"app\",site=\"other\"} 1000\n"));
	assert_non_null(strstr(data, "kmon_oom_kills_total{namespace=\"shop\",pod=\"leaky-0\",container=\"app\"} 2\n"));
	assert_non_null(strstr(data, "kmon_ledger_frees_matched_total 1\n"));
	assert_non_null(strstr(data, "kmon_ledger_frees_matched_elsewhere_total 1\n"));
	assert_non_null(strstr(data, "kmon_ledger_frees_unmatched_total 1\n"));
	assert_non_null(strstr(data, "kmon_ledger_outstanding_bytes{namespace=\"shop\",pod=\"gone-0\",container=\"app\"} 4096\n"));
	if (metrics_out) {
		FILE *f = fopen(metrics_out, "w");
		assert_non_null(f);
		fputs(data, f);
		assert_int_equal(fclose(f), 0);
	}
	/* The exited container stays charged until --expire (300 s here)
	 * after its own last event (20); a free of its memory made elsewhere,
	 * at 250, is charged back but is not the container being seen. */
	assert_int_equal(aggtable__expire(t, 200, 300), 0);
	e = charged_free(&a[0], KMON_EVF_FREED_ELSEWHERE);
	e.size = 96; /* partial: pretend 96 of the 4096 bytes */
	aggtable__add(t, &e, &gone, 250);
	assert_int_equal(aggtable__expire(t, 315, 300), 1); /* leaky-0: last seen 12 */
	metrics_text__reset(m);
	aggtable__write_metrics(t, m);
	data = metrics_text__data(m, NULL);
	assert_non_null(strstr(data, "pod=\"gone-0\",container=\"app\"} 4000\n"));
	assert_null(strstr(data, "leaky-0"));
	assert_int_equal(aggtable__expire(t, 321, 300), 1);
	assert_int_equal(aggtable__series(t), 0);
	/* A free made elsewhere after that has nothing to be subtracted from:
	 * counted, and the series does not come back. */
	aggtable__add(t, &e, &gone, 330);
	assert_int_equal(aggtable__series(t), 0);
	metrics_text__reset(m);
	aggtable__write_metrics(t, m);
	data = metrics_text__data(m, NULL);
	assert_non_null(strstr(data, "kmon_ledger_frees_unseen_total 1\n"));
	assert_null(strstr(data, "gone-0"));
	metrics_text__free(m);
	aggtable__free(t);
}

static void fixture(const char *name, char **buf, size_t *len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/memcg/%s", KMON_FIXTURES, name);
	*buf = slurp(path, len);
}

static void test_memcg_parsers(void **state)
{
	struct memcg_kmem k;
	char *b, v1[MEMCG_PATH_MAX], v2[MEMCG_PATH_MAX], big[4096];
	size_t n;
	uint64_t v;

	(void)state;
	fixture("v2-memory.stat-lxc", &b, &n);
	assert_int_equal(memcg__parse_stat(b, n, &k), 0);
	assert_int_equal(k.have, MEMCG_HAVE_KERNEL | MEMCG_HAVE_SLAB | MEMCG_HAVE_SOCK);
	assert_int_equal(k.kernel, 110592);
	assert_int_equal(k.slab, 64816);
	assert_int_equal(k.slab_reclaimable, 27520);
	assert_int_equal(k.slab_unreclaimable, 37296);
	free(b);
	fixture("v2-memory.stat-pod-golden", &b, &n);
	assert_int_equal(memcg__parse_stat(b, n, &k), 0);
	assert_int_equal(k.have, MEMCG_HAVE_KERNEL | MEMCG_HAVE_SLAB | MEMCG_HAVE_SOCK);
	assert_int_equal(k.kernel, 0);
	free(b);
	/* v1 memory.stat has no kernel fields: parses, finds none. */
	fixture("v1-memory.stat", &b, &n);
	assert_int_equal(memcg__parse_stat(b, n, &k), 0);
	assert_int_equal(k.have, 0);
	free(b);
	fixture("v1-kmem.usage_in_bytes", &b, &n);
	assert_int_equal(memcg__parse_u64(b, n, &v), 0);
	assert_int_equal(v, 3002368);
	free(b);
	fixture("proc-cgroup-hybrid-v1.txt", &b, &n);
	assert_int_equal(memcg__parse_proc_cgroup(b, n, v1, sizeof(v1), v2, sizeof(v2)), 0);
	assert_string_equal(v1, "/h5fixture");
	assert_string_equal(v2, "/");
	free(b);
	/* Hostile input. */
	assert_int_equal(memcg__parse_stat("kernel 1\nkernel 2\n", 18, &k), -EINVAL);
	assert_int_equal(memcg__parse_stat("kernel 18446744073709551616\n", 28, &k), -EINVAL);
	assert_int_equal(memcg__parse_stat("kernel -1\n", 10, &k), -EINVAL);
	assert_int_equal(memcg__parse_stat("kernel\n", 7, &k), -EINVAL);
	assert_int_equal(memcg__parse_stat("Kernel 1\n", 9, &k), -EINVAL);
	assert_int_equal(memcg__parse_stat("kernel 1\0\n", 10, &k), -EINVAL);
	assert_int_equal(memcg__parse_u64("12a\n", 4, &v), -EINVAL);
	assert_int_equal(memcg__parse_u64("", 0, &v), -EINVAL);
	assert_int_equal(memcg__parse_proc_cgroup("4:memory:/a/../../etc\n", 22, v1, sizeof(v1), v2,
						  sizeof(v2)), -EINVAL);
	assert_int_equal(memcg__parse_proc_cgroup("4:memory:relative\n", 18, v1, sizeof(v1), v2,
						  sizeof(v2)), -EINVAL);
	assert_int_equal(memcg__parse_proc_cgroup("garbage\n", 8, v1, sizeof(v1), v2, sizeof(v2)),
			 -EINVAL);
	memset(big, 'a', sizeof(big));
	memcpy(big, "0::/", 4);
	assert_int_equal(memcg__parse_proc_cgroup(big, sizeof(big), v1, sizeof(v1), v2, sizeof(v2)),
			 -EINVAL);
	/* A path may hold ':' and names that only start with dots. */
	assert_int_equal(memcg__parse_proc_cgroup("3:cpu,memory:/k:8s/..x\n0::/y\n", 29, v1,
						  sizeof(v1), v2, sizeof(v2)), 0);
	assert_string_equal(v1, "/k:8s/..x");
	assert_string_equal(v2, "/y");
}

static void write_file(const char *path, const char *s, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

/* The reader on a v2 tree made of the real files, then a hostile one. */
static void test_memcg_reader(void **state)
{
	char dir[] = "/tmp/kmon-memcg-XXXXXX", p[600], *b, *path = NULL, *huge;
	struct memcg_kmem k;
	struct memcg *mc;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/cg", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/cg/cgroup.controllers", dir);
	write_file(p, "cpu memory\n", 11);
	snprintf(p, sizeof(p), "%s/cg/pod", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	fixture("v2-memory.stat-lxc", &b, &n);
	snprintf(p, sizeof(p), "%s/cg/pod/memory.stat", dir);
	write_file(p, b, n);
	free(b);
	snprintf(p, sizeof(p), "%s/proc", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/proc/77", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/proc/77/cgroup", dir);
	write_file(p, "0::/pod\n", 8);
	snprintf(p, sizeof(p), "%s/proc", dir);
	{
		char cg[600];
		snprintf(cg, sizeof(cg), "%s/cg", dir);
		mc = memcg__new(p, cg);
	}
	assert_non_null(mc);
	assert_string_equal(memcg__version(mc), "v2");
	assert_int_equal(memcg__locate(mc, 78, 0, &path), -ESRCH);
	{
		struct stat st;
		snprintf(p, sizeof(p), "%s/cg/pod", dir);
		assert_int_equal(stat(p, &st), 0);
		/* the pid is now in another cgroup than its event said */
		assert_int_equal(memcg__locate(mc, 77, (uint64_t)st.st_ino + 1, &path), -ESTALE);
		assert_int_equal(memcg__locate(mc, 77, (uint64_t)st.st_ino, &path), 0);
	}
	assert_string_equal(path, "/pod");
	assert_int_equal(memcg__read(mc, path, &k), 0);
	assert_int_equal(k.kernel, 110592);
	assert_int_equal(k.slab, 64816);
	/* A memory.stat past the bound is refused and counted. */
	huge = malloc(MEMCG_FILE_MAX + 100);
	assert_non_null(huge);
	for (n = 0; n + 9 <= MEMCG_FILE_MAX + 100; n += 9)
		memcpy(huge + n, "sock 100\n", 9);
	snprintf(p, sizeof(p), "%s/cg/pod/memory.stat", dir);
	write_file(p, huge, n);
	free(huge);
	assert_int_equal(memcg__read(mc, path, &k), -EINVAL);
	assert_int_equal(memcg__parse_errors(mc), 1);
	/* Gone. */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(memcg__read(mc, path, &k), -ENOENT);
	free(path);
	memcg__free(mc);
	snprintf(p, sizeof(p), "rm -rf %s", dir);
	assert_int_equal(system(p), 0);
}

/* The reader on this machine's own hierarchy, through the table as
 * kmon-aggregate drives it: an event of ours names our memory cgroup (its v2
 * cgroup id checked where v2 is mounted), whose kernel memory is exported. */
static void test_memcg_live(void **state)
{
	struct memcg *mc = memcg__new("/proc", "/sys/fs/cgroup");
	struct aggtable *t = aggtable__new(10, 2);
	struct metrics_text *m = metrics_text__new();
	struct kmon_meta me = meta(5, "kube-system", "self-0", "test");
	struct kmon_event e = alloc_ev(KMON_EV_MEMORY_ALLOC, 5, 0x10, 64, NULL);
	struct stat st;
	char *path = NULL, out[600];
	const char *data;
	FILE *f;

	(void)state;
	assert_non_null(t);
	e.pid = (uint32_t)getpid();
	if (mc) {
		assert_int_equal(memcg__locate(mc, (uint32_t)getpid(), 0, &path), 0);
		free(path);
		/* our v2 cgroup's id, as bpf_get_current_cgroup_id() gives it */
		if (!stat("/sys/fs/cgroup/unified", &st) || !stat("/sys/fs/cgroup", &st))
			e.cgroup_id = (uint64_t)st.st_ino;
	}
	aggtable__add(t, &e, &me, 1);
	if (mc)
		aggtable__memcg_refresh(t, mc, 10);
	assert_int_equal(aggtable__write_metrics(t, m), 0);
	data = metrics_text__data(m, NULL);
	if (metrics_out) {
		snprintf(out, sizeof(out), "%s.memcg", metrics_out);
		f = fopen(out, "w");
		assert_non_null(f);
		fputs(data, f);
		assert_int_equal(fclose(f), 0);
	}
	if (!mc) {
		aggtable__free(t);
		metrics_text__free(m);
		skip();
	}
	assert_non_null(strstr(data, "kmon_memcg_kernel_bytes{namespace=\"kube-system\",pod=\"self-0\",container=\"test\"} "));
	assert_non_null(strstr(data, "kmon_memcg_locate_failures_total 0\n"));
	aggtable__free(t);
	metrics_text__free(m);
	memcg__free(mc);
}

/* kmon-top's columns: HELD from the ledger (a free from elsewhere charged
 * back), the site holding most, OOM kills (a row even without activity). */
static void test_toptable(void **state)
{
	struct toptable *t = toptable__new();
	struct kmon_meta a = meta(1, "shop", "web-0", "app"), b = meta(2, "shop", "web-1", "app");
	struct kmon_event big = alloc_ev(KMON_EV_SLAB_ALLOC, 1, 0xffffffff81000100ull, 5000, "dentry");
	struct kmon_event small = alloc_ev(KMON_EV_MEMORY_ALLOC, 1, 0xffffffff81000200ull, 10, NULL);
	struct kmon_event e;
	const struct top_row *rows;
	size_t n;

	(void)state;
	assert_non_null(t);
	toptable__add(t, &big, &a);
	for (n = 0; n < 5; n++)
		toptable__add(t, &small, &a); /* allocates most often, holds least */
	e = charged_free(&big, KMON_EVF_FREED_ELSEWHERE);
	e.size = 1000; /* one of five pretend objects */
	toptable__add(t, &e, &a);
	e = alloc_ev(KMON_EV_OOM_KILL, 2, 0, 0, NULL);
	toptable__add(t, &e, &b);
	n = toptable__snapshot(t, 1, TOP_SORT_HELD, NULL, &rows);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].pod, "web-0");
	assert_int_equal(rows[0].held_bytes, 4050);
	assert_int_equal(rows[0].top_call_site, 0xffffffff81000100ull);
	assert_string_equal(rows[1].pod, "web-1");
	assert_int_equal(rows[1].oom_kills, 1);
	assert_int_equal(rows[1].held_bytes, 0);
	toptable__free(t);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_charged_frees),
		cmocka_unit_test(test_top_k_other),
		cmocka_unit_test(test_cache_name_ends_at_nul),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_aggtable_ledger),
		cmocka_unit_test(test_memcg_parsers),
		cmocka_unit_test(test_memcg_reader),
		cmocka_unit_test(test_memcg_live),
		cmocka_unit_test(test_toptable),
	};

	if (argc > 1)
		metrics_out = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
