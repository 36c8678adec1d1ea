// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/aggregate/memcg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct memcg {
	int proc_fd, mem_fd, v2_fd; /* v2_fd: -1 when no v2 hierarchy (no id check) */
	bool v1;
	uint64_t parse_errors;
};

static int open_dir(int at, const char *path)
{
	return openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static bool has_file(int dir, const char *name)
{
	return faccessat(dir, name, F_OK, 0) == 0;
}

struct memcg *memcg__new(const char *proc_root, const char *cgroup_root)
{
	struct memcg *m = calloc(1, sizeof(*m));
	int root;

	if (!m)
		return NULL;
	m->proc_fd = m->mem_fd = m->v2_fd = -1;
	m->proc_fd = open_dir(AT_FDCWD, proc_root);
	root = open_dir(AT_FDCWD, cgroup_root);
	if (m->proc_fd < 0 || root < 0)
		goto fail;
	if (has_file(root, "cgroup.controllers")) {
		/* v2 alone: memory.stat there when the memory controller is on. */
		m->mem_fd = dup(root);
		m->v2_fd = dup(root);
		if (m->mem_fd < 0 || m->v2_fd < 0)
			goto fail;
	} else {
		m->mem_fd = open_dir(root, "memory");
		if (m->mem_fd < 0 || !has_file(m->mem_fd, "memory.usage_in_bytes")) {
			errno = ENOENT;
			goto fail;
		}
		m->v1 = true;
		m->v2_fd = open_dir(root, "unified"); /* hybrid: for the id check */
	}
	close(root);
	return m;
fail:
	if (root >= 0)
		close(root);
	memcg__free(m);
	return NULL;
}

void memcg__free(struct memcg *m)
{
	int e = errno;

	if (!m)
		return;
	if (m->proc_fd >= 0)
		close(m->proc_fd);
	if (m->mem_fd >= 0)
		close(m->mem_fd);
	if (m->v2_fd >= 0)
		close(m->v2_fd);
	free(m);
	errno = e;
}

const char *memcg__version(const struct memcg *m)
{
	return m->v1 ? "v1" : "v2";
}

uint64_t memcg__parse_errors(const struct memcg *m)
{
	return m->parse_errors;
}

/* Whole small file into buf (NUL-terminated); -EFBIG past the bound. */
static ssize_t slurp(int dir, const char *path, char *buf, size_t cap)
{
	int fd = openat(dir, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	size_t got = 0;
	ssize_t r;

	if (fd < 0)
		return -errno;
	while (got < cap - 1) {
		r = read(fd, buf + got, cap - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		if (!r)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got == cap - 1)
		return -EFBIG;
	buf[got] = '\0';
	return (ssize_t)got;
}

static int parse_num(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!n || n > 20)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int memcg__parse_u64(const char *buf, size_t len, uint64_t *out)
{
	if (len && buf[len - 1] == '\n')
		len--;
	return parse_num(buf, len, out);
}

int memcg__parse_stat(const char *buf, size_t len, struct memcg_kmem *out)
{
	static const struct {
		const char *key;
		size_t off;
		unsigned have;
	} keys[] = {
		{ "kernel", offsetof(struct memcg_kmem, kernel), MEMCG_HAVE_KERNEL },
		{ "slab", offsetof(struct memcg_kmem, slab), MEMCG_HAVE_SLAB },
		{ "slab_reclaimable", offsetof(struct memcg_kmem, slab_reclaimable), 0 },
		{ "slab_unreclaimable", offsetof(struct memcg_kmem, slab_unreclaimable), 0 },
		{ "sock", offsetof(struct memcg_kmem, sock), MEMCG_HAVE_SOCK },
	};
	unsigned seen = 0, k;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *line = buf + pos, *nl = memchr(line, '\n', len - pos), *sp;
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		uint64_t v;

		pos += n + (nl ? 1 : 0);
		/* "key value": one space, key in [a-z0-9_], value decimal. */
		sp = memchr(line, ' ', n);
		if (!sp || sp == line)
			return -EINVAL;
		for (k = 0; line + k < sp; k++)
			if (!((line[k] >= 'a' && line[k] <= 'z') || (line[k] >= '0' && line[k] <= '9') ||
			      line[k] == '_'))
				return -EINVAL;
		if (parse_num(sp + 1, n - (size_t)(sp + 1 - line), &v))
			return -EINVAL;
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (strlen(keys[k].key) != (size_t)(sp - line) ||
			    memcmp(keys[k].key, line, (size_t)(sp - line)))
				continue;
			if (seen & (1u << k))
				return -EINVAL;
			seen |= 1u << k;
			*(uint64_t *)((char *)out + keys[k].off) = v;
			out->have |= keys[k].have;
		}
	}
	return 0;
}

static int copy_path(const char *p, size_t n, char *out, size_t out_n)
{
	size_t i;

	if (!n || p[0] != '/' || n >= out_n || n >= MEMCG_PATH_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (p[i] == '\0')
			return -EINVAL;
	/* No component may climb out of the hierarchy. */
	for (i = 0; i < n; i++)
		if (p[i] == '/' && i + 1 < n && p[i + 1] == '.' &&
		    (i + 2 == n || p[i + 2] == '/' ||
		     (p[i + 2] == '.' && (i + 3 == n || p[i + 3] == '/'))))
			return -EINVAL;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int memcg__parse_proc_cgroup(const char *buf, size_t len, char *v1_memory, size_t v1_n,
			     char *v2, size_t v2_n)
{
	size_t pos = 0;

	if (!v1_n || !v2_n)
		return -EINVAL;
	v1_memory[0] = v2[0] = '\0';
	while (pos < len) {
		const char *line = buf + pos, *nl = memchr(line, '\n', len - pos), *c1, *c2;
		size_t n = nl ? (size_t)(nl - line) : len - pos;

		pos += n + (nl ? 1 : 0);
		if (!n)
			continue;
		/* hierarchy-id:controller-list:path (the path may hold ':') */
		c1 = memchr(line, ':', n);
		c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - line)) : NULL;
		if (!c2)
			return -EINVAL;
		if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
			if (copy_path(c2 + 1, n - (size_t)(c2 + 1 - line), v2, v2_n))
				return -EINVAL;
			continue;
		}
		/* v1: is "memory" one of the comma-separated controllers? */
		{
			const char *p = c1 + 1;
			while (p < c2) {
				const char *e = memchr(p, ',', (size_t)(c2 - p));
				size_t w = e ? (size_t)(e - p) : (size_t)(c2 - p);
				if (w == 6 && !memcmp(p, "memory", 6)) {
					if (copy_path(c2 + 1, n - (size_t)(c2 + 1 - line), v1_memory,
						      v1_n))
						return -EINVAL;
					break;
				}
				p += w + 1;
			}
		}
	}
	return 0;
}

/* "/a/b" -> "a/b", "/" -> "." (openat wants a relative path). */
static const char *rel(const char *p)
{
	return p[1] ? p + 1 : ".";
}

int memcg__locate(struct memcg *m, uint32_t pid, uint64_t cgroup_id, char **path)
{
	char name[32], buf[8192], v1p[MEMCG_PATH_MAX], v2p[MEMCG_PATH_MAX];
	ssize_t n;
	struct stat st;
	const char *mine;

	snprintf(name, sizeof(name), "%u/cgroup", pid);
	n = slurp(m->proc_fd, name, buf, sizeof(buf));
	if (n == -ENOENT)
		return -ESRCH;
	if (n < 0) {
		if (n == -EFBIG)
			m->parse_errors++;
		return (int)n;
	}
	if (memcg__parse_proc_cgroup(buf, (size_t)n, v1p, sizeof(v1p), v2p, sizeof(v2p))) {
		m->parse_errors++;
		return -EINVAL;
	}
	mine = m->v1 ? v1p : v2p;
	if (!mine[0])
		return -ENOENT;
	/* The pid may have exited and been reused since its event: its v2
	 * cgroup's inode number is the cgroup id the event carried. */
	if (cgroup_id && m->v2_fd >= 0 && v2p[0]) {
		if (fstatat(m->v2_fd, rel(v2p), &st, AT_SYMLINK_NOFOLLOW))
			return -ESTALE;
		if ((uint64_t)st.st_ino != cgroup_id)
			return -ESTALE;
	}
	*path = strdup(mine);
	return *path ? 0 : -ENOMEM;
}

int memcg__read(struct memcg *m, const char *path, struct memcg_kmem *out)
{
	char file[MEMCG_PATH_MAX + 48], *buf;
	ssize_t n;
	int r = 0;

	if (path[0] != '/' || strlen(path) >= MEMCG_PATH_MAX)
		return -EINVAL;
	buf = malloc(MEMCG_FILE_MAX);
	if (!buf)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	if (!m->v1) {
		snprintf(file, sizeof(file), "%s/memory.stat", rel(path));
		n = slurp(m->mem_fd, file, buf, MEMCG_FILE_MAX);
		if (n >= 0 && memcg__parse_stat(buf, (size_t)n, out))
			n = -EINVAL;
		r = n < 0 ? (int)n : 0;
	} else {
		uint64_t v;
		snprintf(file, sizeof(file), "%s/memory.kmem.usage_in_bytes", rel(path));
		n = slurp(m->mem_fd, file, buf, MEMCG_FILE_MAX);
		if (n >= 0 && memcg__parse_u64(buf, (size_t)n, &v))
			n = -EINVAL;
		if (n >= 0) {
			out->kernel = v;
			out->have |= MEMCG_HAVE_KERNEL;
		}
		r = n < 0 ? (int)n : 0;
		snprintf(file, sizeof(file), "%s/memory.kmem.tcp.usage_in_bytes", rel(path));
		n = slurp(m->mem_fd, file, buf, MEMCG_FILE_MAX);
		if (n >= 0 && !memcg__parse_u64(buf, (size_t)n, &v)) {
			out->sock = v;
			out->have |= MEMCG_HAVE_SOCK;
		} else if (n >= 0 || n == -EFBIG) {
			m->parse_errors++;
		}
	}
	if (r == -EINVAL || r == -EFBIG) {
		m->parse_errors++;
		r = -EINVAL;
	}
	free(buf);
	return r;
}
