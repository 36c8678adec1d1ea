// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * PodList parse cost: builds a kubelet-like PodList of N pods (C containers
 * each, default 3, the last one restarted) and parses it R times. Prints one
 * JSON line with the body size, ms per parse, the process's peak RSS and how
 * much of it the parse added (peak after the parses minus peak before).
 * With --cjson-only it times the JSON library's own part alone, cJSON's
 * parse of the same body and its free: the floor kmon's parse is measured
 * against, in a process of its own (peak RSS only grows).
 *   bench_podlist [PODS] [REPS] [CONTAINERS_PER_POD] [--cjson-only]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "k8s/podlist.h"

/* This process's peak RSS in KiB (VmHWM: unlike ru_maxrss it is not carried
 * over from the parent across execve). */
static long hwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned pods = argc > 1 ? (unsigned)atoi(argv[1]) : 110;
	unsigned reps = argc > 2 ? (unsigned)atoi(argv[2]) : 50;
	unsigned per = argc > 3 ? (unsigned)atoi(argv[3]) : 3;
	bool cjson_only = argc > 4 && !strcmp(argv[4], "--cjson-only");
	size_t cap = (size_t)pods * (1024 + per * 512) + 256, len = 0;
	char *buf, err[256];
	struct rusage ru;
	long rss0;
	double t0, t;

	if (pods < 1 || pods > 100000 || per < 1 || per > 100 || reps < 1 || reps > 10000 ||
	    (argc > 4 && !cjson_only) || argc > 5) {
		fprintf(stderr, "usage: bench_podlist [PODS 1..100000] [REPS 1..10000] "
			"[CONTAINERS 1..100] [--cjson-only]\n");
		return 2;
	}
	buf = malloc(cap);
	if (!buf)
		return 1;
	len += (size_t)snprintf(buf + len, cap - len, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"items\":[");
	for (unsigned i = 0; i < pods; i++) {
		len += (size_t)snprintf(buf + len, cap - len,
			"%s{\"metadata\":{\"name\":\"app-%u-7d9f8b6c5-x2lqp\",\"namespace\":\"ns-%u\","
			"\"uid\":\"%08x-3555-427e-a507-b503ccb2c06e\",\"labels\":{\"app\":\"a%u\"}},"
			"\"spec\":{\"nodeName\":\"worker-1\"},\"status\":{\"phase\":\"Running\","
			"\"containerStatuses\":[", i ? "," : "", i, i % 20, i, i);
		for (unsigned c = 0; c < per; c++)
			len += (size_t)snprintf(buf + len, cap - len,
				"%s{\"name\":\"c%u\",\"ready\":true,\"restartCount\":%u,"
				"\"image\":\"registry.example.com/app:1.2.3\",\"containerID\":"
				"\"containerd://%08x%056u\",\"lastState\":%s}",
				c ? "," : "", c, c == per - 1, i * per + c, 0,
				c == per - 1 ? "{\"terminated\":{\"exitCode\":1,\"containerID\":"
					 "\"containerd://ffffffff00000000000000000000000000000000000000000000000000000000\"}}"
				       : "{}");
		len += (size_t)snprintf(buf + len, cap - len, "]}}");
	}
	len += (size_t)snprintf(buf + len, cap - len, "]}");
	rss0 = hwm_kb();
	t0 = now();
	for (unsigned r = 0; r < reps; r++) {
		if (cjson_only) {
			cJSON *root = cJSON_ParseWithLength(buf, len);

			if (!root) {
				fprintf(stderr, "bench_podlist: cJSON cannot parse the body\n");
				return 1;
			}
			cJSON_Delete(root);
		} else {
			struct podlist *pl = podlist__parse(buf, len, 100000, err, sizeof(err));

			if (!pl || pl->n_pods != pods) {
				fprintf(stderr, "bench_podlist: %s\n", err);
				return 1;
			}
			podlist__free(pl);
		}
	}
	t = (now() - t0) / reps;
	ru.ru_maxrss = hwm_kb();
	printf("{\"pods\":%u,\"containers\":%u,\"parser\":\"%s\",\"body_bytes\":%zu,"
	       "\"parse_ms\":%.3f,\"peak_rss_kb\":%ld,\"parse_rss_kb\":%ld}\n", pods, pods * per,
	       cjson_only ? "cjson" : "kmon", len, t * 1e3, ru.ru_maxrss, ru.ru_maxrss - rss0);
	free(buf);
	return 0;
}
