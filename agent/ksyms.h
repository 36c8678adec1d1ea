/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel's text symbols, read once while the agent is privileged:
 * from /proc/kallsyms, or, when kptr_restrict hides the addresses there
 * (all zero), from the BPF ksym iterator (kernel >= 6.0), which sees the real
 * values. Gives the drain a cheap address -> (symbol id << 32 | offset)
 * translation, and the consumers a sealed memfd of names only (shm/symtab.h)
 * whose ids match.
 *
 * Read once: modules loaded after the agent started are not in the table
 * (their call sites stay unresolved, id 0) until the agent restarts.
 */
#ifndef KMON_AGENT_KSYMS_H
#define KMON_AGENT_KSYMS_H

#include <stddef.h>
#include <stdint.h>

#include "shm/symtab.h"

enum ksyms_mode {
	KSYMS_AUTO = 0,     /* kallsyms, else the ksym iterator */
	KSYMS_KALLSYMS = 1, /* kallsyms only */
	KSYMS_ITER = 2,     /* the ksym iterator only */
	KSYMS_OFF = 3,      /* no table: every call site unresolved */
};

struct ksyms_opts {
	size_t sz;
	enum ksyms_mode mode;
	const char *kallsyms_path; /* default /proc/kallsyms (tests point elsewhere) */
};

struct ksyms;

/* Reads the table. A table no source could fill is not an error: it is
 * empty, ksyms__source() says KMON_SYMTAB_NONE and ksyms__why() why and what
 * to do. NULL (errno set) only when the memfd cannot be made. */
struct ksyms *ksyms__load(const struct ksyms_opts *opts);
void ksyms__free(struct ksyms *k);
enum kmon_symtab_source ksyms__source(const struct ksyms *k);
/* Empty when a source worked; else one sentence with the reason and the fix. */
const char *ksyms__why(const struct ksyms *k);
uint32_t ksyms__count(const struct ksyms *k);
/* The sealed table handed to every consumer (the same descriptor for all). */
int ksyms__memfd(const struct ksyms *k);
size_t ksyms__memfd_bytes(const struct ksyms *k);
/* Opaque call site of a kernel address: (symbol id << 32) | offset, or 0
 * when not resolved. Not thread-safe (a cache in front of a binary search):
 * the drain thread's alone. */
uint64_t ksyms__ref(struct ksyms *k, uint64_t addr);
/* Symbol start address of id (tests and --raw checks); 0 if none. */
uint64_t ksyms__addr(const struct ksyms *k, uint32_t id);

/* Parses one line of /proc/kallsyms' format ("ffffffff81000000 T name" with
 * an optional "\t[module]"). Returns 1 for a text symbol (addr, name and
 * module, NULL for vmlinux, point into line, which is modified), 0 for a line
 * to skip, -EINVAL for a malformed one. Exposed for the unit tests. */
int ksyms_parse_line(char *line, uint64_t *addr, const char **name, const char **module);

#endif
