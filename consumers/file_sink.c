// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consumers/sink.h"

#define BUF_BYTES (256u * 1024)

struct file_sink {
	struct sink s;
	char *path; /* NULL: stdout */
	int fd;
	char *buf;
	size_t len;
	struct sink_stats st;
	uint64_t buffered_lines;
};

static int fs_write_all(struct file_sink *f)
{
	size_t off = 0;
	ssize_t n;

	while (off < f->len) {
		n = write(f->fd, f->buf + off, f->len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* A reader that went away (EPIPE) or a full disk: count and go on. */
			f->st.dropped += f->buffered_lines;
			f->len = 0;
			f->buffered_lines = 0;
			return -errno;
		}
		off += (size_t)n;
	}
	f->st.sent += f->buffered_lines;
	f->len = 0;
	f->buffered_lines = 0;
	return 0;
}

static int fs_write(struct sink *s, const char *line, size_t len)
{
	struct file_sink *f = (struct file_sink *)s;

	f->st.lines++;
	if (f->len + len > BUF_BYTES) {
		int r = fs_write_all(f);
		if (r && len > BUF_BYTES)
			return r;
	}
	if (len > BUF_BYTES) {
		f->st.dropped++;
		return -E2BIG;
	}
	memcpy(f->buf + f->len, line, len);
	f->len += len;
	f->buffered_lines++;
	return 0;
}

static void fs_flush(struct sink *s)
{
	(void)fs_write_all((struct file_sink *)s);
}

static int fs_open(struct file_sink *f)
{
	int fd;

	if (!f->path) {
		f->fd = STDOUT_FILENO;
		return 0;
	}
	fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (f->fd >= 0 && f->fd != STDOUT_FILENO)
		close(f->fd);
	f->fd = fd;
	return 0;
}

static int fs_reopen(struct sink *s)
{
	struct file_sink *f = (struct file_sink *)s;

	fs_flush(s);
	return fs_open(f);
}

static void fs_stats(struct sink *s, struct sink_stats *out)
{
	*out = ((struct file_sink *)s)->st;
}

static void fs_close(struct sink *s, void (*done)(void *ctx), void *ctx)
{
	struct file_sink *f = (struct file_sink *)s;

	fs_flush(s);
	if (done)
		done(ctx);
	if (f->fd >= 0 && f->fd != STDOUT_FILENO)
		close(f->fd);
	free(f->path);
	free(f->buf);
	free(f);
}

struct sink *file_sink__new(const char *path)
{
	struct file_sink *f = calloc(1, sizeof(*f));
	int r;

	if (!f)
		return NULL;
	f->fd = -1;
	f->buf = malloc(BUF_BYTES);
	if (!f->buf)
		goto fail;
	if (strcmp(path, "-")) {
		f->path = strdup(path);
		if (!f->path)
			goto fail;
	}
	r = fs_open(f);
	if (r) {
		errno = -r;
		goto fail;
	}
	f->s.write = fs_write;
	f->s.flush = fs_flush;
	f->s.reopen = fs_reopen;
	f->s.get_stats = fs_stats;
	f->s.close = fs_close;
	return &f->s;
fail:
	r = errno;
	free(f->buf);
	free(f->path);
	free(f);
	errno = r;
	return NULL;
}
