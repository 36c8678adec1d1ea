/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A tgid -> container key set, open addressing, so each /proc scan can be
 * compared with the previous one in O(n) without a syscall per process.
 * Bounded: it never grows past the capacity given at creation (the PID map's
 * size), and says so when full.
 */
#ifndef KMON_AGENT_PIDSET_H
#define KMON_AGENT_PIDSET_H

#include <stdbool.h>
#include <stdint.h>

struct pidset;

struct pidset *pidset__new(uint32_t capacity);
void pidset__free(struct pidset *s);
/* Returns 0, or -ENOSPC when capacity entries are already present. */
int pidset__put(struct pidset *s, uint32_t tgid, uint32_t key);
/* Returns true and sets *key when present. */
bool pidset__get(const struct pidset *s, uint32_t tgid, uint32_t *key);
uint32_t pidset__count(const struct pidset *s);
void pidset__clear(struct pidset *s);
/* Calls fn for every entry; fn must not modify the set. */
void pidset__for_each(const struct pidset *s, void (*fn)(void *ctx, uint32_t tgid, uint32_t key),
		      void *ctx);

#endif
