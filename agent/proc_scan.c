// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/proc_scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CGROUP_FILE_MAX (64 * 1024)
#define CGID_PATH_MAX 1024

static int read_small(int dirfd, const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < cap) {
		n = read(fd, buf + off, cap - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return (int)n;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	*len = off;
	return 0;
}

/* The last cgroup directory looked up: a scan meets a container's
 * processes in runs, so most lookups are a string compare. */
struct cgid_cache {
	char path[CGID_PATH_MAX];
	uint64_t id;
};

/* The id of the container's own cgroup v2 directory when this process sits
 * in it (the id bpf_get_current_cgroup_id() reports: the directory's inode
 * number), else 0. 0 too on v1 nodes and for hybrid nodes' runtimes that
 * leave containers in the v2 root; those containers rely on the scans. */
static uint64_t own_cgroup_id(const struct cgroup_v2_where *v2, const char *text, size_t len,
			      const struct cgroup_info *info, struct cgid_cache *cache)
{
	char rel[CGID_PATH_MAX], abs[CGID_PATH_MAX], full[CGID_PATH_MAX + 256];
	struct stat st;

	if (!v2 || !v2->mount[0] || info->kind != CGROUP_CONTAINER || !info->container_id[0])
		return 0;
	if (cgroup__own_v2_path(text, len, info->container_id, rel, sizeof(rel)))
		return 0;
	if (cache->id && !strcmp(cache->path, rel))
		return cache->id;
	if (cgroup__v2_resolve(v2->ns_root, rel, abs, sizeof(abs)))
		return 0;
	snprintf(full, sizeof(full), "%s%s", v2->mount, abs);
	if (stat(full, &st) || !S_ISDIR(st.st_mode))
		return 0; /* gone meanwhile, or another cgroup namespace's view */
	snprintf(cache->path, sizeof(cache->path), "%s", rel);
	cache->id = (uint64_t)st.st_ino;
	return cache->id;
}

static int add_hit(struct proc_scan *s, uint32_t tgid, const struct cgroup_info *info,
		   uint64_t cgid)
{
	if (s->n_hits == s->cap_hits) {
		size_t nc = s->cap_hits ? s->cap_hits * 2 : 256;
		struct proc_scan_hit *h = realloc(s->hits, nc * sizeof(*h));

		if (!h)
			return -ENOMEM;
		s->hits = h;
		s->cap_hits = nc;
	}
	s->hits[s->n_hits].tgid = tgid;
	s->hits[s->n_hits].info = *info;
	s->hits[s->n_hits].cgid = cgid;
	s->n_hits++;
	return 0;
}

int proc_scan__run(struct proc_scan *s, const char *proc_root,
		   const struct cgroup_v2_where *v2, uint32_t self)
{
	struct timespec a, b;
	struct dirent *de;
	struct cgid_cache cache = { .id = 0 };
	char *buf, path[64];
	int dfd, err = 0;
	DIR *d;

	memset(s, 0, sizeof(*s));
	clock_gettime(CLOCK_MONOTONIC, &a);
	buf = malloc(CGROUP_FILE_MAX);
	d = opendir(proc_root);
	if (!buf || !d) {
		err = -errno;
		free(buf);
		if (d)
			closedir(d);
		return err;
	}
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		char *end;
		unsigned long pid = strtoul(de->d_name, &end, 10);
		struct cgroup_info info;
		size_t len = 0;
		int r;

		if (*end || end == de->d_name || pid == 0 || pid > UINT32_MAX)
			continue;
		s->seen++;
		if (pid == self)
			continue;
		snprintf(path, sizeof(path), "%lu/cgroup", pid);
		r = read_small(dfd, path, buf, CGROUP_FILE_MAX, &len);
		if (r) {
			/* Gone between readdir and open: normal on a busy node. */
			if (r == -ENOENT || r == -ESRCH)
				s->vanished++;
			else
				s->unreadable++;
			continue;
		}
		if (!len) {
			s->vanished++; /* zombie or exiting */
			continue;
		}
		if (cgroup__classify(buf, len, &info) || info.kind == CGROUP_HOST ||
		    info.kind == CGROUP_CONMON)
			continue;
		err = add_hit(s, (uint32_t)pid, &info, own_cgroup_id(v2, buf, len, &info, &cache));
		if (err)
			break;
	}
	closedir(d);
	free(buf);
	clock_gettime(CLOCK_MONOTONIC, &b);
	s->ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	return err;
}

void proc_scan__release(struct proc_scan *s)
{
	free(s->hits);
	s->hits = NULL;
	s->n_hits = s->cap_hits = 0;
}
