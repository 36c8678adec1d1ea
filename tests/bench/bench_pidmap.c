// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What a /proc scan's re-assertion of the PID map costs (issue 13): every
 * scan writes every container process it found into the kernel map, instead
 * of only those its own copy did not have. On a real BPF hash map of the
 * agent's shape (u32 tgid -> 8-byte value, 65536 entries), per scan of N
 * processes already in the map:
 *   skip      what the agent did before: no syscall for a known process
 *   one_by_one  N bpf_map_update_elem
 *   batch     bpf_map_update_batch of the N (what the agent does now)
 * Needs root (or CAP_BPF). Prints one JSON line: us per scan for each (the
 * median, and one_by_one and batch per round).
 *   bench_pidmap [N] [ROUNDS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

struct val {
	unsigned int key, flags;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ,"name":[us, ...] in round order (before median() sorts them). */
static void print_rounds(const char *name, const double *v, int n)
{
	printf(",\"%s\":[", name);
	for (int k = 0; k < n; k++)
		printf("%s%.1f", k ? "," : "", v[k] * 1e6);
	printf("]");
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	unsigned int n = argc > 1 ? (unsigned int)atoi(argv[1]) : 10000;
	int rounds = argc > 2 ? atoi(argv[2]) : 21, fd, r;
	unsigned int *keys = calloc(n, sizeof(*keys)), i;
	struct val *vals = calloc(n, sizeof(*vals));
	double *one = calloc((size_t)rounds, sizeof(double));
	double *bat = calloc((size_t)rounds, sizeof(double));
	double *skip = calloc((size_t)rounds, sizeof(double));
	unsigned long looked = 0;

	if (!keys || !vals || !one || !bat || !skip || n == 0 || n > (1u << 20) || rounds < 1) {
		fprintf(stderr, "usage: bench_pidmap [N<=1048576] [ROUNDS]\n");
		return 2;
	}
	/* The agent's default map (65536), or as large as --pid-map-size must be
	 * for N tracked processes. */
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_pids", sizeof(*keys), sizeof(*vals),
			    n > 65536 ? n : 65536, NULL);
	if (fd < 0) {
		fprintf(stderr, "bpf_map_create: %s (needs root or CAP_BPF)\n", strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++) {
		keys[i] = 100000 + i * 7; /* spread like real pids */
		vals[i].key = 1 + i % 50;
		vals[i].flags = 1;
		if (bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY)) {
			fprintf(stderr, "bpf_map_update_elem: %s\n", strerror(errno));
			return 1;
		}
	}
	for (int k = 0; k < rounds; k++) {
		double t0 = now();
		LIBBPF_OPTS(bpf_map_batch_opts, o, .elem_flags = BPF_ANY);
		__u32 count = n;

		/* The old scan's work for a known process: a look at its own copy. */
		for (i = 0; i < n; i++)
			looked += vals[i].key == vals[(i * 31) % n].key;
		skip[k] = now() - t0;

		t0 = now();
		for (i = 0; i < n; i++)
			if (bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY)) {
				fprintf(stderr, "bpf_map_update_elem: %s\n", strerror(errno));
				return 1;
			}
		one[k] = now() - t0;

		t0 = now();
		r = bpf_map_update_batch(fd, keys, vals, &count, &o);
		bat[k] = now() - t0;
		if (r || count != n) {
			fprintf(stderr, "bpf_map_update_batch: %s (%u of %u)\n", strerror(errno),
				count, n);
			return 1;
		}
	}
	/* Each round's pair is side by side: the report takes ratios per round. */
	printf("{\"pids\":%u,\"rounds\":%d", n, rounds);
	print_rounds("one_by_one_us_rounds", one, rounds);
	print_rounds("batch_us_rounds", bat, rounds);
	printf(",\"skip_us\":%.1f,\"one_by_one_us\":%.1f,"
	       "\"batch_us\":%.1f,\"one_by_one_over_batch\":%.2f,\"skip_hits\":%lu}\n",
	       median(skip, rounds) * 1e6, median(one, rounds) * 1e6,
	       median(bat, rounds) * 1e6, median(one, rounds) / median(bat, rounds), looked);
	close(fd);
	free(keys);
	free(vals);
	free(one);
	free(bat);
	free(skip);
	return 0;
}
