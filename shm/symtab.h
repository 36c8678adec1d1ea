/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel symbol table the agent hands every consumer at attach: a sealed
 * memfd (F_SEAL_SHRINK|GROW|WRITE|SEAL) holding symbol and module NAMES only,
 * never an address, indexed by symbol id. With KMON_EVF_ADDR_OPAQUE an event's
 * call sites are (symbol id << 32) | offset into that symbol, so a consumer
 * turns one into "function+0xoff [module]" locally, at no cost to the agent.
 *
 * Layout (little endian, both ends share a machine), version 1:
 *
 *   off size
 *     0    4 magic        KMON_SYMTAB_MAGIC
 *     4    2 version      KMON_SYMTAB_VERSION
 *     6    2 source       enum kmon_symtab_source (where the agent read it)
 *     8    4 n_symbols    entries; symbol id i (1..n_symbols) is entry i-1;
 *                         id 0 means "not resolved"
 *    12    4 strings_len  bytes of the string pool (its last byte is NUL)
 *    16    8 total_len    32 + 8 * n_symbols + strings_len: the file's size
 *    24    8 reserved     0
 *    32      entries[n_symbols]: { u32 name_off; u32 module_off; } offsets
 *            into the pool; module_off KMON_SYMTAB_NO_MODULE for vmlinux
 *            then the string pool: NUL-terminated names
 *
 * The consumer treats it as hostile input all the same (kmon_symtab__parse
 * checks every count, offset and terminator before anything is used).
 */
#ifndef KMON_SHM_SYMTAB_H
#define KMON_SHM_SYMTAB_H

#include <stddef.h>
#include <stdint.h>

#define KMON_SYMTAB_MAGIC 0x5453594bu /* "KYST" */
#define KMON_SYMTAB_VERSION 1
#define KMON_SYMTAB_NO_MODULE 0xffffffffu
#define KMON_SYMTAB_MAX_SYMBOLS (1u << 22)   /* a kernel has ~200k text symbols */
#define KMON_SYMTAB_MAX_BYTES (256ull << 20) /* refused beyond this */
/* A call site further than this past its symbol's start is not resolved:
 * it is past the end of the last symbol before a gap (a module loaded after
 * the table was read, a BPF program). */
#define KMON_SYMTAB_MAX_OFFSET (1u << 20)

enum kmon_symtab_source {
	KMON_SYMTAB_NONE = 0,     /* no source worked: every call site is unresolved */
	KMON_SYMTAB_KALLSYMS = 1, /* /proc/kallsyms */
	KMON_SYMTAB_KSYM_ITER = 2, /* the BPF ksym iterator (kptr_restrict hid kallsyms) */
};

struct kmon_symtab_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t source;
	uint32_t n_symbols;
	uint32_t strings_len;
	uint64_t total_len;
	uint64_t reserved;
};

struct kmon_symtab_entry {
	uint32_t name_off;
	uint32_t module_off;
};

struct kmon_symtab;

/* Validates a table of len bytes at buf (borrowed: it must outlive the
 * result). NULL with a one-line reason in err when anything is wrong. */
struct kmon_symtab *kmon_symtab__parse(const void *buf, size_t len, char *err, size_t errlen);
/* Checks fd is a memfd sealed against every change, maps it read-only and
 * parses it. The descriptor may be closed afterwards. */
struct kmon_symtab *kmon_symtab__open(int fd, char *err, size_t errlen);
void kmon_symtab__free(struct kmon_symtab *st);
uint32_t kmon_symtab__count(const struct kmon_symtab *st);
enum kmon_symtab_source kmon_symtab__source(const struct kmon_symtab *st);
const char *kmon_symtab__source_name(unsigned source);
/* Symbol id's name and module (NULL for vmlinux); -ENOENT for id 0 or out of range. */
int kmon_symtab__lookup(const struct kmon_symtab *st, uint32_t id, const char **name,
			const char **module);
/* Writes "function+0xoff" or "function+0xoff [module]" for an opaque call
 * site (symbol id << 32 | offset), NUL-terminated. Returns the length, or
 * -ENOENT (id 0: not resolved, or unknown id; buf gets ""), -ENOSPC (cut). */
int kmon_symtab__symbolize(const struct kmon_symtab *st, uint64_t call_site, char *buf,
			   size_t len);

#endif
