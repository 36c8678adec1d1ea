// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/symtab.h"
#include "shm/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct kmon_symtab {
	const struct kmon_symtab_hdr *hdr;
	const struct kmon_symtab_entry *ent;
	const char *str;
	void *map; /* ours to unmap (kmon_symtab__open) */
	size_t map_len;
};

#define fail(err, errlen, ...) ((void)kmon_err__set(err, errlen, 0, __VA_ARGS__))

struct kmon_symtab *kmon_symtab__parse(const void *buf, size_t len, char *err, size_t errlen)
{
	const struct kmon_symtab_hdr *h = buf;
	const struct kmon_symtab_entry *e;
	struct kmon_symtab *st;
	const char *str;
	uint64_t want;

	if (!buf || len < sizeof(*h)) {
		fail(err, errlen, "symbol table: %zu bytes, shorter than its header", len);
		return NULL;
	}
	if (h->magic != KMON_SYMTAB_MAGIC || h->version != KMON_SYMTAB_VERSION) {
		fail(err, errlen, "symbol table: bad magic 0x%x or version %u (want %u)", h->magic,
		     h->version, KMON_SYMTAB_VERSION);
		return NULL;
	}
	if (h->source > KMON_SYMTAB_KSYM_ITER || h->reserved) {
		fail(err, errlen, "symbol table: unknown source %u or reserved bits set", h->source);
		return NULL;
	}
	if (h->n_symbols > KMON_SYMTAB_MAX_SYMBOLS) {
		fail(err, errlen, "symbol table: %u symbols, more than %u", h->n_symbols,
		     KMON_SYMTAB_MAX_SYMBOLS);
		return NULL;
	}
	/* Every term is below 2^32, so the sum cannot wrap. */
	want = sizeof(*h) + (uint64_t)h->n_symbols * sizeof(*e) + h->strings_len;
	if (h->total_len != want || h->total_len != len || len > KMON_SYMTAB_MAX_BYTES) {
		fail(err, errlen, "symbol table: sizes disagree (header says %llu, counts say %llu, "
		     "file has %zu)", (unsigned long long)h->total_len,
		     (unsigned long long)want, len);
		return NULL;
	}
	e = (const struct kmon_symtab_entry *)(h + 1);
	str = (const char *)(e + h->n_symbols);
	/* A pool ending in NUL terminates every string that starts inside it. */
	if (h->n_symbols && (!h->strings_len || str[h->strings_len - 1] != '\0')) {
		fail(err, errlen, "symbol table: string pool not NUL-terminated");
		return NULL;
	}
	for (uint32_t i = 0; i < h->n_symbols; i++) {
		if (e[i].name_off >= h->strings_len ||
		    (e[i].module_off != KMON_SYMTAB_NO_MODULE && e[i].module_off >= h->strings_len)) {
			fail(err, errlen, "symbol table: symbol %u points outside the string pool",
			     i + 1);
			return NULL;
		}
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		fail(err, errlen, "symbol table: out of memory");
		return NULL;
	}
	st->hdr = h;
	st->ent = e;
	st->str = str;
	return st;
}

struct kmon_symtab *kmon_symtab__open(int fd, char *err, size_t errlen)
{
	const int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
	struct kmon_symtab *st;
	struct stat sb;
	void *p;
	int seals;

	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		fail(err, errlen, "symbol table: not a regular file");
		return NULL;
	}
	/* Sealed: what we validate now is what we read later. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & need) != need) {
		fail(err, errlen, "symbol table: descriptor is not a sealed memfd (seals 0x%x)",
		     seals < 0 ? 0 : seals);
		return NULL;
	}
	if (sb.st_size < (off_t)sizeof(struct kmon_symtab_hdr) ||
	    (uint64_t)sb.st_size > KMON_SYMTAB_MAX_BYTES) {
		fail(err, errlen, "symbol table: %lld bytes", (long long)sb.st_size);
		return NULL;
	}
	p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fail(err, errlen, "symbol table: mmap: %s", strerror(errno));
		return NULL;
	}
	st = kmon_symtab__parse(p, (size_t)sb.st_size, err, errlen);
	if (!st) {
		munmap(p, (size_t)sb.st_size);
		return NULL;
	}
	st->map = p;
	st->map_len = (size_t)sb.st_size;
	return st;
}

void kmon_symtab__free(struct kmon_symtab *st)
{
	if (!st)
		return;
	if (st->map)
		munmap(st->map, st->map_len);
	free(st);
}

uint32_t kmon_symtab__count(const struct kmon_symtab *st)
{
	return st ? st->hdr->n_symbols : 0;
}

enum kmon_symtab_source kmon_symtab__source(const struct kmon_symtab *st)
{
	return st ? (enum kmon_symtab_source)st->hdr->source : KMON_SYMTAB_NONE;
}

const char *kmon_symtab__source_name(unsigned source)
{
	switch (source) {
	case KMON_SYMTAB_KALLSYMS:
		return "kallsyms";
	case KMON_SYMTAB_KSYM_ITER:
		return "ksym-iter";
	default:
		return "none";
	}
}

int kmon_symtab__lookup(const struct kmon_symtab *st, uint32_t id, const char **name,
			const char **module)
{
	const struct kmon_symtab_entry *e;

	if (!st || id == 0 || id > st->hdr->n_symbols)
		return -ENOENT;
	e = &st->ent[id - 1];
	*name = st->str + e->name_off;
	*module = e->module_off == KMON_SYMTAB_NO_MODULE ? NULL : st->str + e->module_off;
	return 0;
}

/* Appends s to buf[*at..len) as far as it fits; false when cut. */
static bool append(char *buf, size_t len, size_t *at, const char *s, size_t n)
{
	size_t room = len - 1 - *at; /* len >= 1: the NUL always fits */

	if (n > room) {
		memcpy(buf + *at, s, room);
		*at += room;
		return false;
	}
	memcpy(buf + *at, s, n);
	*at += n;
	return true;
}

/* By hand, not snprintf: consumers run this for every event they print. */
int kmon_symtab__symbolize(const struct kmon_symtab *st, uint64_t call_site, char *buf,
			   size_t len)
{
	static const char hx[] = "0123456789abcdef";
	const char *name, *mod;
	char off[12];
	uint32_t v = (uint32_t)call_site;
	size_t at = 0, o = sizeof(off);
	bool ok;

	if (!len)
		return -ENOSPC;
	buf[0] = '\0';
	if (kmon_symtab__lookup(st, (uint32_t)(call_site >> 32), &name, &mod))
		return -ENOENT;
	do {
		off[--o] = hx[v & 15];
		v >>= 4;
	} while (v);
	ok = append(buf, len, &at, name, strlen(name)) && append(buf, len, &at, "+0x", 3) &&
	     append(buf, len, &at, off + o, sizeof(off) - o) &&
	     (!mod || (append(buf, len, &at, " [", 2) && append(buf, len, &at, mod, strlen(mod)) &&
		       append(buf, len, &at, "]", 1)));
	buf[at] = '\0';
	return ok ? (int)at : -ENOSPC;
}
