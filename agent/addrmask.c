// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/addrmask.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <sodium.h>

#include "agent/ksyms.h"

struct addrmask {
	struct ksyms *ksyms;
	bool raw;
	unsigned char key[crypto_shorthash_KEYBYTES]; /* 16 bytes: SipHash-2-4 */
};

struct addrmask *addrmask__new(struct ksyms *k, bool raw)
{
	struct addrmask *m;
	ssize_t n;

	if (sodium_init() < 0) {
		errno = EIO;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->ksyms = k;
	m->raw = raw;
	/* Blocks only before the kernel's pool is initialised (early boot). */
	do
		n = getrandom(m->key, sizeof(m->key), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(m->key)) {
		free(m);
		errno = n < 0 ? errno : EIO;
		return NULL;
	}
	return m;
}

void addrmask__free(struct addrmask *m)
{
	if (!m)
		return;
	sodium_memzero(m->key, sizeof(m->key));
	free(m);
}

uint64_t addrmask__ptr_id(const struct addrmask *m, uint64_t ptr)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t id;

	if (!ptr)
		return 0;
	crypto_shorthash(out, (const unsigned char *)&ptr, sizeof(ptr), m->key);
	memcpy(&id, out, sizeof(id));
	id &= ~(1ull << 63);
	return id ? id : 1;
}

static uint64_t ref(struct addrmask *m, uint64_t addr)
{
	return m->ksyms ? ksyms__ref(m->ksyms, addr) : 0;
}

void addrmask__apply(struct addrmask *m, struct kmon_event *ev)
{
	switch (ev->event_type) {
	case KMON_EV_MEMORY_ALLOC:
	case KMON_EV_SLAB_ALLOC:
	case KMON_EV_MEMORY_FREE:
	case KMON_EV_SLAB_FREE:
		break;
	default:
		return;
	}
	if (m->raw)
		return;
	ev->data.mem.ptr = addrmask__ptr_id(m, ev->data.mem.ptr);
	ev->data.mem.call_site = ref(m, ev->data.mem.call_site);
	if (ev->event_type == KMON_EV_MEMORY_FREE || ev->event_type == KMON_EV_SLAB_FREE)
		ev->data.free.alloc_call_site = ref(m, ev->data.free.alloc_call_site);
	ev->flags |= KMON_EVF_ADDR_OPAQUE;
}
