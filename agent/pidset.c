// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/pidset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* tgid 0 is never a user process, so it marks an empty slot. */
struct slot {
	uint32_t tgid;
	uint32_t key;
};

struct pidset {
	struct slot *slots;
	uint32_t mask;
	uint32_t count;
	uint32_t capacity;
	uint32_t max_slots;
};

/* Slots to start with: a node's PIDs, not the PID map's size. Sized for the
 * map (65536 by default), two sets took 2 MiB the agent touched on every
 * scan's clear; they now grow with what is tracked. */
#define PIDSET_MIN_SLOTS 1024u

struct pidset *pidset__new(uint32_t capacity)
{
	struct pidset *s;
	uint32_t n = 16;

	if (!capacity || capacity > (1u << 28)) {
		errno = EINVAL;
		return NULL;
	}
	/* At most half full keeps probe sequences short. */
	while (n < capacity * 2)
		n <<= 1;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->max_slots = n;
	n = n < PIDSET_MIN_SLOTS ? n : PIDSET_MIN_SLOTS;
	s->slots = calloc(n, sizeof(*s->slots));
	if (!s->slots) {
		free(s);
		return NULL;
	}
	s->mask = n - 1;
	s->capacity = capacity;
	return s;
}

void pidset__free(struct pidset *s)
{
	if (!s)
		return;
	free(s->slots);
	free(s);
}

static uint32_t hash(uint32_t v)
{
	v ^= v >> 16;
	v *= 0x7feb352dU;
	v ^= v >> 15;
	v *= 0x846ca68bU;
	v ^= v >> 16;
	return v;
}

/* Doubles the table, rehashing every entry; -ENOMEM leaves it as it was. */
static int grow(struct pidset *s)
{
	uint32_t n = (s->mask + 1) * 2, mask = n - 1;
	struct slot *slots = calloc(n, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (uint32_t j = 0; j <= s->mask; j++) {
		uint32_t i = hash(s->slots[j].tgid) & mask;

		if (!s->slots[j].tgid)
			continue;
		while (slots[i].tgid)
			i = (i + 1) & mask;
		slots[i] = s->slots[j];
	}
	free(s->slots);
	s->slots = slots;
	s->mask = mask;
	return 0;
}

int pidset__put(struct pidset *s, uint32_t tgid, uint32_t key)
{
	uint32_t i;

	if (!tgid)
		return -EINVAL;
	/* Kept at most half full, as at the largest size. */
	if ((s->count + 1) * 2 > s->mask + 1 && s->mask + 1 < s->max_slots &&
	    !pidset__get(s, tgid, NULL)) {
		int err = grow(s);

		if (err)
			return err;
	}
	for (i = hash(tgid) & s->mask;; i = (i + 1) & s->mask) {
		if (s->slots[i].tgid == tgid) {
			s->slots[i].key = key;
			return 0;
		}
		if (!s->slots[i].tgid)
			break;
	}
	if (s->count >= s->capacity)
		return -ENOSPC;
	s->slots[i].tgid = tgid;
	s->slots[i].key = key;
	s->count++;
	return 0;
}

bool pidset__get(const struct pidset *s, uint32_t tgid, uint32_t *key)
{
	for (uint32_t i = hash(tgid) & s->mask; tgid; i = (i + 1) & s->mask) {
		if (s->slots[i].tgid == tgid) {
			if (key)
				*key = s->slots[i].key;
			return true;
		}
		if (!s->slots[i].tgid)
			return false;
	}
	return false;
}

uint32_t pidset__count(const struct pidset *s)
{
	return s->count;
}

void pidset__clear(struct pidset *s)
{
	memset(s->slots, 0, ((size_t)s->mask + 1) * sizeof(*s->slots));
	s->count = 0;
}

void pidset__for_each(const struct pidset *s, void (*fn)(void *ctx, uint32_t tgid, uint32_t key),
		      void *ctx)
{
	for (uint32_t i = 0; i <= s->mask; i++)
		if (s->slots[i].tgid)
			fn(ctx, s->slots[i].tgid, s->slots[i].key);
}
