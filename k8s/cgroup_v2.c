// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "k8s/cgroup_v2.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
			if (!memchr(path, '\0', n) &&
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

/* "/" -> 0, "/.." -> 1, "/../.." -> 2; anything else -> -1. */
static int dots_depth(const char *root)
{
	int d = 0;

	if (!strcmp(root, "/"))
		return 0;
	while (*root) {
		if (strncmp(root, "/..", 3) || (root[3] && root[3] != '/'))
			return -1;
		d++;
		root += 3;
	}
	return d;
}

int cgroup__v2_mount(const char *mountinfo, char *out, size_t cap, unsigned *ns_depth)
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
		if (dots_depth(root) < 0 || strchr(mnt, '\\'))
			continue;
		if (strlen(mnt) >= cap) {
			ret = -ENAMETOOLONG;
			continue;
		}
		snprintf(out, cap, "%s", mnt);
		*ns_depth = (unsigned)dots_depth(root);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

int cgroup__v2_resolve(const char *ns_root, const char *path, char *out, size_t cap)
{
	size_t n = strlen(ns_root);
	const char *p = path;

	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(out, ns_root, n + 1);
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t sl = slash ? (size_t)(slash - p) : strlen(p);

		if (sl == 2 && !memcmp(p, "..", 2)) {
			char *up = memrchr(out, '/', n);

			if (!up)
				return -ENOENT; /* above the hierarchy's root */
			n = (size_t)(up - out);
			out[n] = '\0';
		} else if (sl && !(sl == 1 && *p == '.')) {
			if (n + 1 + sl >= cap)
				return -ENAMETOOLONG;
			out[n++] = '/';
			memcpy(out + n, p, sl);
			n += sl;
			out[n] = '\0';
		}
		p += sl;
		if (*p == '/')
			p++;
	}
	return 0;
}

/* The 0:: path of /proc/self/cgroup. */
static int self_v2_path(const char *file, char *out, size_t cap)
{
	char line[4096];
	FILE *f = fopen(file, "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, "\n");

		line[n] = '\0';
		if (strncmp(line, "0::/", 4))
			continue;
		if (n - 3 >= cap) {
			ret = -ENAMETOOLONG;
			break;
		}
		memcpy(out, line + 3, n - 2);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

static bool procs_has(const char *dir, pid_t pid)
{
	char path[1400], buf[4096];
	FILE *f;
	bool found = false;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(buf, sizeof(buf), f))
		found = strtol(buf, NULL, 10) == pid;
	fclose(f);
	return found;
}

#define LOCATE_MAX_DIRS 100000

/* Depth-first, exactly depth levels below dir (a path of cap bytes that
 * is extended in place); *budget bounds the directories opened. */
static bool find_pid_dir(char *dir, size_t cap, unsigned depth, pid_t pid, unsigned *budget)
{
	size_t n = strlen(dir);
	struct dirent *de;
	bool found = false;
	DIR *d;

	if (!depth)
		return procs_has(dir, pid);
	if (!*budget)
		return false;
	--*budget;
	d = opendir(dir);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (n + 1 + strlen(de->d_name) >= cap)
			continue;
		dir[n] = '/';
		strcpy(dir + n + 1, de->d_name);
		found = find_pid_dir(dir, cap, depth - 1, pid, budget);
		if (!found)
			dir[n] = '\0';
	}
	closedir(d);
	return found;
}

int cgroup__v2_locate(const char *mountinfo, const char *self_cgroup, pid_t pid,
		      struct cgroup_v2_where *w)
{
	char self[1024], dir[1400];
	unsigned depth, segs = 0, budget = LOCATE_MAX_DIRS;
	size_t mlen;
	int ret;

	memset(w, 0, sizeof(*w));
	ret = cgroup__v2_mount(mountinfo, w->mount, sizeof(w->mount), &depth);
	if (ret)
		return ret;
	if (!depth)
		return 0; /* the host's namespace: paths are already absolute */
	ret = self_v2_path(self_cgroup, self, sizeof(self));
	if (ret)
		return ret;
	for (const char *c = self; *c; c++)
		segs += c[0] == '/' && c[1];
	/* This process sits depth + segs levels below the hierarchy's root. */
	snprintf(dir, sizeof(dir), "%s", w->mount);
	mlen = strlen(dir);
	if (!find_pid_dir(dir, sizeof(dir), depth + segs, pid, &budget))
		return -ENOENT;
	/* Its namespace root: that directory without the segs of its own path. */
	for (unsigned i = 0; i < segs; i++)
		*strrchr(dir + mlen, '/') = '\0';
	if (strlen(dir + mlen) >= sizeof(w->ns_root))
		return -ENAMETOOLONG;
	snprintf(w->ns_root, sizeof(w->ns_root), "%s", dir + mlen);
	return 0;
}
