// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "k8s/cgroup_v2.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool has_dotdot(const char *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '.' && p[i + 1] == '.' && (i == 0 || p[i - 1] == '/') &&
		    (i + 2 == n || p[i + 2] == '/'))
			return true;
	return false;
}

int cgroup__own_v2_path(const char *text, size_t len, const char *container_id, char *out,
			size_t cap)
{
	const char *p = text, *end = text + len;
	size_t idlen = strlen(container_id);

	if (idlen != 64)
		return -ENOENT;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end, *path, *last;
		size_t n;

		if (le - p >= 4 && !memcmp(p, "0::/", 4)) {
			path = p + 3;
			n = (size_t)(le - path);
			last = path + n;
			while (last > path && last[-1] != '/')
				last--;
			/* The id must be the last segment's core, not merely
			 * somewhere in the path: a sub-cgroup is not the container's. */
			if (!memchr(path, '\0', n) && !has_dotdot(path, n) &&
			    (size_t)(path + n - last) >= idlen &&
			    memmem(last, (size_t)(path + n - last), container_id, idlen)) {
				if (n >= cap)
					return -ENAMETOOLONG;
				memcpy(out, path, n);
				out[n] = '\0';
				return 0;
			}
			return -ENOENT;
		}
		p = nl ? nl + 1 : end;
	}
	return -ENOENT;
}

int cgroup__v2_mount(const char *mountinfo, char *out, size_t cap)
{
	char line[4096];
	FILE *f = fopen(mountinfo, "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype src opts */
		char root[1024], mnt[1024];
		const char *dash = strstr(line, " - ");

		if (!dash || strncmp(dash + 3, "cgroup2 ", 8))
			continue;
		if (sscanf(line, "%*s %*s %*s %1023s %1023s", root, mnt) != 2)
			continue;
		/* Only the hierarchy's root; mountinfo escapes odd characters
		 * (\040), which a path we then stat would not match: skip those. */
		if (strcmp(root, "/") || strchr(mnt, '\\'))
			continue;
		if (strlen(mnt) >= cap) {
			ret = -ENAMETOOLONG;
			continue;
		}
		snprintf(out, cap, "%s", mnt);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}
