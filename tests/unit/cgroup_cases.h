/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Loads tests/fixtures/cgroup-*.txt (block format in tests/fixtures/README.md):
 * one struct per case, its /proc/<pid>/cgroup text and its [expect] values.
 * For cmocka tests (include after <cmocka.h> and slurp.h). */
#ifndef KMON_TESTS_UNIT_CGROUP_CASES_H
#define KMON_TESTS_UNIT_CGROUP_CASES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CASE_VERSION, CASE_RUNTIME, CASE_ID, CASE_UID, CASE_QOS, CASE_KIND, CASE_KUBELET, CASE_KEYS };

static const char *const cgroup_case_keys[CASE_KEYS] = {
	"cgroup_version", "runtime", "container_id", "pod_uid", "qos", "kind", "kubelet",
};

struct cgroup_case {
	char name[128];
	char cgroup[8192];
	char exp[CASE_KEYS][160];
};

/* Every case of the file with a [cgroup] section; *n their number. */
static struct cgroup_case *cgroup_cases__load(const char *path, unsigned *n)
{
	size_t len;
	char *all = slurp(path, &len), *block, *next;
	struct cgroup_case *cases = NULL;
	unsigned cap = 0;

	*n = 0;
	/* Blocks are separated by a line holding only %%. */
	for (block = all; block; block = next) {
		struct cgroup_case c;
		char *line, *lsave = NULL;
		int sec = 0;

		memset(&c, 0, sizeof(c));
		snprintf(c.name, sizeof(c.name), "?");
		next = strstr(block, "\n%%\n");
		if (next) {
			*next = '\0';
			next += 4;
		}
		for (line = strtok_r(block, "\n", &lsave); line; line = strtok_r(NULL, "\n", &lsave)) {
			if (!strncmp(line, "# case", 6))
				snprintf(c.name, sizeof(c.name), "%s", line + 2);
			if (line[0] == '#')
				continue;
			if (!strcmp(line, "[cgroup]")) {
				sec = 1;
				continue;
			}
			if (!strcmp(line, "[expect]")) {
				sec = 2;
				continue;
			}
			if (sec == 1) {
				strncat(c.cgroup, line, sizeof(c.cgroup) - strlen(c.cgroup) - 2);
				strcat(c.cgroup, "\n");
			} else if (sec == 2) {
				for (int k = 0; k < CASE_KEYS; k++) {
					size_t kl = strlen(cgroup_case_keys[k]);
					if (!strncmp(line, cgroup_case_keys[k], kl) && line[kl] == '=')
						snprintf(c.exp[k], sizeof(c.exp[k]), "%s", line + kl + 1);
				}
			}
		}
		if (!c.cgroup[0])
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			cases = realloc(cases, cap * sizeof(*cases));
			assert_non_null(cases);
		}
		cases[(*n)++] = c;
	}
	free(all);
	return cases;
}

#endif
