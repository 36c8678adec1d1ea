// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libFuzzer: the control protocol decoder (hello and reply) on arbitrary
 * datagrams, as a hostile client or agent could send them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1), err[KMON_PROTO_ERR_MAX];
	enum kmon_hello_status st;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	st = kmon_hello_check(buf, size, 64u << 20, 8u << 20, err, sizeof(err));
	if (st == KMON_HELLO_OK) {
		const struct kmon_hello *h = (const struct kmon_hello *)buf;
		/* Accepted hellos hold only terminated names within bounds. */
		if (size != sizeof(*h) || !memchr(h->name, 0, sizeof(h->name)) ||
		    h->n_namespaces > KMON_PROTO_NS_MAX)
			abort();
	} else if (!memchr(err, 0, sizeof(err))) {
		abort();
	}
	(void)kmon_hello_reply_check(buf, size, err, sizeof(err));
	if (size >= sizeof(struct kmon_ready) &&
	    !kmon_ready_check(buf, size, err, sizeof(err)) && size != sizeof(struct kmon_ready))
		abort();
	free(buf);
	return 0;
}
