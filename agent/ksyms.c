// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/ksyms.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "shm/common/fdio.h"
#include "shm/common/log.h"
#include "ksyms_iter.skel.h"

/* Distinct call sites on a node are a few thousand: a two-way cache of
 * 2 x 8192 entries (256 KiB) answers nearly every event without the binary
 * search over ~120k symbols (a direct-mapped 4096 made half the sites
 * collide: bench_addrmask). */
#define KSYMS_SETS 8192

struct ksym {
	uint64_t addr;
	uint32_t name;   /* offset into the builder's pool */
	uint32_t module; /* KMON_SYMTAB_NO_MODULE or offset */
};

struct ksyms {
	enum kmon_symtab_source source;
	char why[1024];
	/* Sorted; id i+1 starts at base + offs[i]. Kernel text and modules
	 * span well under 4 GiB on the architectures we know of, so 32-bit
	 * offsets halve the table (120k symbols: 0.9 -> 0.45 MiB of the
	 * agent's memory); a kernel whose symbols span more keeps addrs. */
	uint64_t base;
	uint32_t *offs;
	uint64_t *addrs;
	uint32_t n;
	int memfd;
	size_t memfd_bytes;
	struct {
		uint64_t addr[2];
		uint64_t ref[2];
	} cache[KSYMS_SETS];
};

/* What one read collects: symbols and a pool of their strings. */
struct collect {
	struct ksym *syms;
	size_t n, cap;
	char *pool;
	size_t pool_len, pool_cap;
	uint32_t last_module; /* module names repeat line after line: stored once */
	bool any_addr;        /* a nonzero address was seen */
};

int ksyms_parse_line(char *line, uint64_t *addr, const char **name, const char **module)
{
	char *end, *p, *mod = NULL, *tab;
	unsigned long long v;

	errno = 0;
	v = strtoull(line, &end, 16);
	if (end == line || errno || *end != ' ' || !end[1] || end[2] != ' ')
		return -EINVAL;
	switch (end[1]) {
	case 't': case 'T': case 'w': case 'W':
		break;
	default:
		return 0;
	}
	p = end + 3;
	p[strcspn(p, "\n")] = '\0';
	tab = strchr(p, '\t');
	if (tab) {
		*tab = '\0';
		mod = tab + 1;
		if (mod[0] != '[' || !mod[1] || mod[strlen(mod) - 1] != ']')
			return -EINVAL;
		mod++;
		mod[strlen(mod) - 1] = '\0';
		if (!mod[0])
			return -EINVAL;
	}
	if (!p[0] || strchr(p, ' '))
		return -EINVAL;
	*addr = v;
	*name = p;
	*module = mod;
	return 1;
}

static int pool_add(struct collect *c, const char *s, uint32_t *off)
{
	size_t len = strlen(s) + 1;

	if (c->pool_len + len > UINT32_MAX - 1)
		return -E2BIG;
	if (c->pool_len + len > c->pool_cap) {
		size_t cap = c->pool_cap ? c->pool_cap * 2 : (1u << 20);
		char *p;

		while (cap < c->pool_len + len)
			cap *= 2;
		p = realloc(c->pool, cap);
		if (!p)
			return -ENOMEM;
		c->pool = p;
		c->pool_cap = cap;
	}
	memcpy(c->pool + c->pool_len, s, len);
	*off = (uint32_t)c->pool_len;
	c->pool_len += len;
	return 0;
}

static int collect_line(struct collect *c, char *line)
{
	const char *name, *mod;
	uint64_t addr;
	struct ksym *s;
	int ret = ksyms_parse_line(line, &addr, &name, &mod);

	if (ret <= 0)
		return ret;
	if (addr)
		c->any_addr = true;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 65536;

		if (cap > KMON_SYMTAB_MAX_SYMBOLS)
			return -E2BIG;
		s = realloc(c->syms, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		c->syms = s;
		c->cap = cap;
	}
	s = &c->syms[c->n];
	s->addr = addr;
	ret = pool_add(c, name, &s->name);
	if (ret)
		return ret;
	if (!mod) {
		s->module = KMON_SYMTAB_NO_MODULE;
	} else if (c->last_module != KMON_SYMTAB_NO_MODULE &&
		   strcmp(c->pool + c->last_module, mod) == 0) {
		s->module = c->last_module;
	} else {
		ret = pool_add(c, mod, &s->module);
		if (ret)
			return ret;
		c->last_module = s->module;
	}
	c->n++;
	return 0;
}

static void collect_reset(struct collect *c)
{
	free(c->syms);
	free(c->pool);
	memset(c, 0, sizeof(*c));
	c->last_module = KMON_SYMTAB_NO_MODULE;
}

static int collect_stream(struct collect *c, FILE *f, unsigned *bad)
{
	char *line = NULL;
	size_t cap = 0;
	int ret = 0;

	while (getline(&line, &cap, f) > 0) {
		ret = collect_line(c, line);
		if (ret == -EINVAL) {
			(*bad)++;
			ret = 0;
		} else if (ret) {
			break;
		}
	}
	if (!ret && ferror(f))
		ret = -EIO;
	free(line);
	return ret;
}

static int read_kallsyms(struct collect *c, const char *path, char *why, size_t whylen)
{
	unsigned bad = 0;
	FILE *f = fopen(path, "re");
	int ret;

	if (!f) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	ret = collect_stream(c, f, &bad);
	fclose(f);
	if (ret) {
		snprintf(why, whylen, "%s: %s", path, strerror(-ret));
		return -1;
	}
	if (bad)
		log_warn("%s: %u malformed lines skipped", path, bad);
	if (!c->n) {
		snprintf(why, whylen, "%s lists no text symbol", path);
		return -1;
	}
	if (!c->any_addr) {
		snprintf(why, whylen, "%s shows every address as 0 (kernel.kptr_restrict=%s hides "
			 "them)", path, "2, or 1 without CAP_SYSLOG");
		return -1;
	}
	return 0;
}

static int read_iter(struct collect *c, char *why, size_t whylen)
{
	struct ksyms_iter *skel;
	struct bpf_link *link = NULL;
	unsigned bad = 0;
	FILE *f = NULL;
	int fd = -1, ret = -1, r;

	skel = ksyms_iter__open_and_load();
	if (!skel) {
		snprintf(why, whylen, "the BPF ksym iterator cannot be loaded (%s; it needs kernel "
			 ">= 6.0 and CAP_BPF+CAP_PERFMON)", strerror(errno));
		return -1;
	}
	link = bpf_program__attach_iter(skel->progs.dump_ksym, NULL);
	if (!link) {
		snprintf(why, whylen, "the BPF ksym iterator cannot be attached: %s",
			 strerror(errno));
		goto out;
	}
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		snprintf(why, whylen, "the BPF ksym iterator cannot be read: %s", strerror(errno));
		goto out;
	}
	f = fdopen(fd, "r");
	if (!f) {
		snprintf(why, whylen, "the BPF ksym iterator: %s", strerror(errno));
		goto out;
	}
	fd = -1;
	r = collect_stream(c, f, &bad);
	if (r) {
		snprintf(why, whylen, "reading the BPF ksym iterator: %s", strerror(-r));
		goto out;
	}
	if (!c->n || !c->any_addr) {
		snprintf(why, whylen, "the BPF ksym iterator returned no symbol with an address");
		goto out;
	}
	ret = 0;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	bpf_link__destroy(link);
	ksyms_iter__destroy(skel);
	return ret;
}

static int by_addr(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* Aliases at one address: the lowest pool offset (first listed) wins,
	 * so the table is the same from one read to the next. */
	return x->name < y->name ? -1 : x->name > y->name;
}

/*
 * F_SEAL_WRITE first waits for the kernel's own extra references to the
 * pages just written to go (a page still queued in another CPU's LRU batch
 * counts as pinned) and fails with EBUSY when they have not within its wait:
 * seen once at start on a busy 2-vCPU node, and the agent then refused to
 * run. Those references do go; a failed attempt adds no seal, so try again
 * for about a second before giving up.
 */
static int seal_for_good(int fd)
{
	const struct timespec pause = { .tv_nsec = 40 * 1000 * 1000 };

	for (int i = 0;; i++) {
		if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
			  F_SEAL_SEAL) == 0)
			return 0;
		if (errno != EBUSY || i == 25)
			return -1;
		nanosleep(&pause, NULL);
	}
}

/* The address symbol index i starts at. */
static uint64_t addr_at(const struct ksyms *k, uint32_t i)
{
	return k->offs ? k->base + k->offs[i] : k->addrs[i];
}

/* Sorts, drops aliases, and writes the names-only table; the agent keeps
 * the addresses. */
static int build(struct ksyms *k, struct collect *c)
{
	struct kmon_symtab_hdr h;
	struct kmon_symtab_entry *ents = NULL;
	uint32_t n = 0;
	int ret = -1;

	if (c->n) {
		qsort(c->syms, c->n, sizeof(*c->syms), by_addr);
		k->base = c->syms[0].addr;
		if (c->syms[c->n - 1].addr - k->base <= UINT32_MAX)
			k->offs = malloc(c->n * sizeof(*k->offs));
		else
			k->addrs = malloc(c->n * sizeof(*k->addrs));
		ents = malloc(c->n * sizeof(*ents));
		if ((!k->offs && !k->addrs) || !ents)
			goto out;
		for (size_t i = 0; i < c->n; i++) {
			if (n && addr_at(k, n - 1) == c->syms[i].addr)
				continue;
			if (k->offs)
				k->offs[n] = (uint32_t)(c->syms[i].addr - k->base);
			else
				k->addrs[n] = c->syms[i].addr;
			ents[n].name_off = c->syms[i].name;
			ents[n].module_off = c->syms[i].module;
			n++;
		}
	}
	k->n = n;
	memset(&h, 0, sizeof(h));
	h.magic = KMON_SYMTAB_MAGIC;
	h.version = KMON_SYMTAB_VERSION;
	h.source = (uint16_t)k->source;
	h.n_symbols = n;
	h.strings_len = n ? (uint32_t)c->pool_len : 0;
	h.total_len = sizeof(h) + (uint64_t)n * sizeof(*ents) + h.strings_len;
	k->memfd = memfd_create("kmon-symbols", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (k->memfd < 0)
		goto out;
	/* errno stays the failed write's (the caller reports it). */
	if (kmon_fd__write_all(k->memfd, &h, sizeof(h), NULL) ||
	    kmon_fd__write_all(k->memfd, ents, n * sizeof(*ents), NULL) ||
	    kmon_fd__write_all(k->memfd, c->pool, h.strings_len, NULL))
		goto out;
	/* Sealed for good: nobody, the agent included, can change what a
	 * consumer validated. */
	if (seal_for_good(k->memfd))
		goto out;
	k->memfd_bytes = h.total_len;
	ret = 0;
out:
	free(ents);
	return ret;
}

struct ksyms *ksyms__load(const struct ksyms_opts *opts)
{
	const char *path = opts->kallsyms_path ? opts->kallsyms_path : "/proc/kallsyms";
	char why1[200] = "", why2[200] = "";
	struct collect c;
	struct ksyms *k;
	int e;

	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->memfd = -1;
	memset(&c, 0, sizeof(c));
	c.last_module = KMON_SYMTAB_NO_MODULE;
	if (opts->mode == KSYMS_AUTO || opts->mode == KSYMS_KALLSYMS) {
		if (read_kallsyms(&c, path, why1, sizeof(why1)) == 0)
			k->source = KMON_SYMTAB_KALLSYMS;
		else
			collect_reset(&c);
	}
	if (!k->source && (opts->mode == KSYMS_AUTO || opts->mode == KSYMS_ITER)) {
		if (read_iter(&c, why2, sizeof(why2)) == 0)
			k->source = KMON_SYMTAB_KSYM_ITER;
		else
			collect_reset(&c);
	}
	if (!k->source) {
		switch (opts->mode) {
		case KSYMS_OFF:
			snprintf(k->why, sizeof(k->why), "--kernel-symbols off");
			break;
		case KSYMS_KALLSYMS:
			snprintf(k->why, sizeof(k->why), "%s, and --kernel-symbols kallsyms rules "
				 "out the BPF ksym iterator; use --kernel-symbols auto (kernel >= "
				 "6.0) or lower kernel.kptr_restrict to 1", why1);
			break;
		case KSYMS_ITER:
			snprintf(k->why, sizeof(k->why), "%s; use --kernel-symbols auto to read "
				 "/proc/kallsyms instead", why2);
			break;
		default:
			snprintf(k->why, sizeof(k->why), "%s, and %s; lower kernel.kptr_restrict to "
				 "1 (the agent reads kallsyms as root) or run a kernel >= 6.0 with "
				 "BPF iterators", why1, why2);
		}
	}
	if (build(k, &c)) {
		e = errno;
		collect_reset(&c);
		ksyms__free(k);
		errno = e;
		return NULL;
	}
	collect_reset(&c);
	return k;
}

void ksyms__free(struct ksyms *k)
{
	if (!k)
		return;
	if (k->memfd >= 0)
		close(k->memfd);
	free(k->offs);
	free(k->addrs);
	free(k);
}

enum kmon_symtab_source ksyms__source(const struct ksyms *k)
{
	return k->source;
}

const char *ksyms__why(const struct ksyms *k)
{
	return k->why;
}

uint32_t ksyms__count(const struct ksyms *k)
{
	return k->n;
}

int ksyms__memfd(const struct ksyms *k)
{
	return k->memfd;
}

size_t ksyms__memfd_bytes(const struct ksyms *k)
{
	return k->memfd_bytes;
}

uint64_t ksyms__addr(const struct ksyms *k, uint32_t id)
{
	return id && id <= k->n ? addr_at(k, id - 1) : 0;
}

static uint64_t lookup(const struct ksyms *k, uint64_t addr)
{
	uint32_t lo = 0, hi = k->n; /* first index with addrs[i] > addr */
	uint64_t off;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (addr_at(k, mid) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return 0;
	off = addr - addr_at(k, lo - 1);
	if (off >= KMON_SYMTAB_MAX_OFFSET)
		return 0;
	return ((uint64_t)lo << 32) | off; /* id = index + 1 = lo */
}

uint64_t ksyms__ref(struct ksyms *k, uint64_t addr)
{
	typeof(k->cache[0]) *c;

	if (!addr || !k->n)
		return 0;
	/* Fibonacci hashing: call sites differ in their low bits. */
	c = &k->cache[(addr * 0x9e3779b97f4a7c15ull) >> (64 - 13)];
	if (c->addr[0] == addr)
		return c->ref[0];
	if (c->addr[1] == addr)
		return c->ref[1];
	/* Most recent in way 0, the one before in way 1. */
	c->addr[1] = c->addr[0];
	c->ref[1] = c->ref[0];
	c->addr[0] = addr;
	c->ref[0] = lookup(k, addr);
	return c->ref[0];
}
