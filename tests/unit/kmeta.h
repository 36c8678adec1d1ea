/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A container's metadata as the agent hands it to consumers, for the unit
 * tests of what consumers build from it (aggregate table, ledger, top). */
#ifndef KMON_TESTS_UNIT_KMETA_H
#define KMON_TESTS_UNIT_KMETA_H

#include <stdio.h>
#include <string.h>

#include "shm/meta.h"

static inline struct kmon_meta meta(uint32_t key, const char *ns, const char *pod, const char *c)
{
	struct kmon_meta m;

	memset(&m, 0, sizeof(m));
	m.key = key;
	snprintf(m.namespace, sizeof(m.namespace), "%s", ns);
	snprintf(m.pod, sizeof(m.pod), "%s", pod);
	snprintf(m.container, sizeof(m.container), "%s", c);
	return m;
}

#endif
