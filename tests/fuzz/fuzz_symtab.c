// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libFuzzer: the consumer's parser of the agent's symbol table
 * (shm/symtab.c) on arbitrary bytes, as an impostor on the socket path could
 * send them. An accepted table must resolve every id to a terminated string
 * inside the buffer (ASan checks the reads), and symbolize must never write
 * past its buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm/symtab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so a read past the end is caught. */
	char *buf = malloc(size ? size : 1), err[200], out[64];
	struct kmon_symtab *st;
	uint32_t n;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	st = kmon_symtab__parse(buf, size, err, sizeof(err));
	if (!st) {
		if (!memchr(err, 0, sizeof(err)))
			abort();
		free(buf);
		return 0;
	}
	n = kmon_symtab__count(st);
	for (uint32_t id = 0; id <= n + 1 && id < 4096; id++) {
		const char *name, *mod;
		int r = kmon_symtab__lookup(st, id, &name, &mod);

		if ((id == 0 || id > n) != (r != 0))
			abort();
		if (!r && (name < buf || name >= buf + size || strlen(name) >= size ||
			   (mod && (mod < buf || mod >= buf + size))))
			abort();
		r = kmon_symtab__symbolize(st, ((uint64_t)id << 32) | (size & 0xffff), out,
					  sizeof(out));
		if (r >= (int)sizeof(out) || !memchr(out, 0, sizeof(out)))
			abort();
	}
	kmon_symtab__free(st);
	free(buf);
	return 0;
}
