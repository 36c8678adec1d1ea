// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libFuzzer: kmon-forward's OTLP encoder on hostile bytes. The first byte
 * picks what to feed:
 *   0: the rest is one kernel record + metadata: its item, encoded in both
 *      encodings; the JSON form must parse (cJSON);
 *   1: the rest is a batch of items (item count in the next byte): encode
 *      refuses it or encodes it, never reads past it;
 *   2/3: the rest is a receiver's answer (protobuf / JSON) for the
 *      partial-success reader. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <linux/types.h>

#include "bpf/kmon_event.h"
#include "consumers/forward/otlp.h"
#include "shm/meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct otlp_encoder *pb, *js;
	char item[OTLP_ITEM_MAX], *body, *txt;
	size_t len;
	int n;

	if (!pb) {
		pb = otlp_encoder__new(OTLP_PROTOBUF, "0.0.0", 1);
		js = otlp_encoder__new(OTLP_JSON, "0.0.0", 1);
		if (!pb || !js || otlp_encoder__set_node(pb, "node") || otlp_encoder__set_node(js, "node"))
			abort();
	}
	if (size < 2)
		return 0;
	switch (data[0]) {
	case 0: {
		struct kmon_event ev;
		struct kmon_meta meta;

		if (size - 1 < sizeof(ev))
			return 0;
		memcpy(&ev, data + 1, sizeof(ev));
		memset(&meta, 0, sizeof(meta));
		memcpy(&meta, data + 1 + sizeof(ev),
		       size - 1 - sizeof(ev) < sizeof(meta) ? size - 1 - sizeof(ev) : sizeof(meta));
		n = otlp__item(item, sizeof(item), &ev, &meta);
		if (n <= 0)
			abort(); /* OTLP_ITEM_MAX holds every item */
		if (otlp_encoder__encode(pb, item, (size_t)n, 1, &body, &len))
			abort();
		free(body);
		if (otlp_encoder__encode(js, item, (size_t)n, 1, &body, &len))
			abort();
		txt = strndup(body, len);
		free(body);
		if (!txt)
			abort();
		cJSON *j = cJSON_Parse(txt);
		if (!j)
			abort(); /* the JSON form must always be JSON */
		cJSON_Delete(j);
		free(txt);
		break;
	}
	case 1: {
		/* A copy of exactly the given bytes, so ASan sees any overread. */
		char *items = malloc(size - 2 ? size - 2 : 1);

		if (!items)
			return 0;
		memcpy(items, data + 2, size - 2);
		if (!otlp_encoder__encode(pb, items, size - 2, data[1], &body, &len))
			free(body);
		free(items);
		break;
	}
	case 2:
	case 3: {
		char *ans = malloc(size - 1);

		if (!ans)
			return 0;
		memcpy(ans, data + 1, size - 1);
		(void)otlp_encoder__rejected(data[0] == 2 ? pb : js, ans, size - 1);
		free(ans);
		break;
	}
	}
	return 0;
}
