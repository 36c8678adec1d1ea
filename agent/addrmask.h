/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Hides kernel addresses from consumers (KASLR): before the fan-out, every
 * address field of a memory or slab event is replaced, and the event flagged
 * KMON_EVF_ADDR_OPAQUE:
 *  - a call site (mem.call_site, free.alloc_call_site) by (symbol id << 32) |
 *    offset, through the symbol table (agent/ksyms.h); 0 when unresolved;
 *  - ptr by SipHash-2-4 of the pointer under a 128-bit key drawn from
 *    getrandom() at start, that never leaves the agent: the same pointer
 *    gives the same id for the agent's lifetime, so an allocation and its
 *    free still pair up, but the id says nothing about the address. The top
 *    bit is cleared, so an id never looks like a kernel address; 0 stays 0.
 * With raw (--raw-kernel-addresses) events pass untouched.
 * Runs on the drain thread only.
 */
#ifndef KMON_AGENT_ADDRMASK_H
#define KMON_AGENT_ADDRMASK_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"

struct ksyms;
struct addrmask;

/* k may be NULL (every call site unresolved). NULL + errno on failure. */
struct addrmask *addrmask__new(struct ksyms *k, bool raw);
void addrmask__free(struct addrmask *m);
/* Rewrites ev in place (memory and slab events; others are left alone). */
void addrmask__apply(struct addrmask *m, struct kmon_event *ev);
/* The opaque id of one pointer (tests, benchmarks). */
uint64_t addrmask__ptr_id(const struct addrmask *m, uint64_t ptr);

#endif
