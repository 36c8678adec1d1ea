// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "consumers/forward/sink.h"
#include "shm/common/fdio.h"

#define BUF_BYTES (256u * 1024)

struct file_sink {
	struct sink s;
	struct file_sink_opts o;
	char *path; /* NULL: stdout */
	int fd;
	uint64_t size; /* bytes in the current file */
	char *buf;
	size_t len;
	struct sink_stats st;
	uint64_t buffered_lines;
	/* One rotated file being compressed off the loop thread. */
	pthread_t gz_thread;
	bool gz_running;
	int gz_err; /* written by the thread, read after join */
	char *gz_src;
};

static int fs_write_all(struct file_sink *f)
{
	size_t done;
	int r = kmon_fd__write_all(f->fd, f->buf, f->len, &done);

	f->size += done;
	/* A reader that went away (EPIPE) or a full disk: count and go on. */
	if (r)
		f->st.dropped += f->buffered_lines;
	else
		f->st.sent += f->buffered_lines;
	f->len = 0;
	f->buffered_lines = 0;
	return r;
}

/* path.N, or path.N.gz once compressed. */
static void rotated_name(const struct file_sink *f, unsigned n, bool gz, char *out, size_t len)
{
	snprintf(out, len, "%s.%u%s", f->path, n, gz ? ".gz" : "");
}

/* Compresses path.1 into path.1.gz (through a temporary name, so a reader
 * never sees half a file under the final name), then removes path.1. */
static void *gz_main(void *arg)
{
	struct file_sink *f = arg;
	char dst[4200], tmp[4210], buf[65536];
	int in = -1, err = 0;
	gzFile out = NULL;
	ssize_t n;

	snprintf(dst, sizeof(dst), "%s.gz", f->gz_src);
	snprintf(tmp, sizeof(tmp), "%s.gz.tmp", f->gz_src);
	in = open(f->gz_src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		err = errno;
		goto out;
	}
	out = gzopen(tmp, "wb6");
	if (!out) {
		err = errno ? errno : ENOMEM;
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (gzwrite(out, buf, (unsigned)n) != (int)n) {
			err = EIO;
			goto out;
		}
	}
	if (n < 0)
		err = errno;
out:
	if (out && gzclose(out) != Z_OK && !err)
		err = EIO;
	if (in >= 0)
		close(in);
	if (!err && rename(tmp, dst) < 0)
		err = errno;
	if (err)
		unlink(tmp); /* the uncompressed file stays: nothing is lost */
	else
		unlink(f->gz_src);
	f->gz_err = err;
	return NULL;
}

static void gz_wait(struct file_sink *f)
{
	if (!f->gz_running)
		return;
	pthread_join(f->gz_thread, NULL);
	f->gz_running = false;
	if (f->gz_err)
		f->st.rotate_errors++;
}

/* path -> path.1 -> ... -> path.keep (the oldest is removed); a new, empty
 * path takes the following lines. The buffer was written out just before,
 * so every line lands in exactly one file. */
static int rotate(struct file_sink *f)
{
	char from[4200], to[4200];
	unsigned i;
	bool gz = f->o.gzip;
	int fd;

	gz_wait(f);
	rotated_name(f, f->o.keep, gz, to, sizeof(to));
	if (unlink(to) < 0 && errno != ENOENT)
		f->st.rotate_errors++;
	for (i = f->o.keep; i > 1; i--) {
		rotated_name(f, i - 1, gz, from, sizeof(from));
		rotated_name(f, i, gz, to, sizeof(to));
		if (rename(from, to) < 0 && errno != ENOENT)
			f->st.rotate_errors++;
		/* A compression that failed earlier left the plain file: keep it too. */
		if (gz) {
			rotated_name(f, i - 1, false, from, sizeof(from));
			rotated_name(f, i, false, to, sizeof(to));
			if (rename(from, to) < 0 && errno != ENOENT)
				f->st.rotate_errors++;
		}
	}
	rotated_name(f, 1, false, to, sizeof(to));
	if (rename(f->path, to) < 0) {
		/* Keep appending to the same file rather than lose lines. */
		f->st.rotate_errors++;
		return -errno;
	}
	fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		int e = errno;
		/* The old descriptor still points at path.1: write there. */
		f->st.rotate_errors++;
		return -e;
	}
	close(f->fd);
	f->fd = fd;
	f->size = 0;
	f->st.rotations++;
	if (gz) {
		free(f->gz_src);
		f->gz_src = strdup(to);
		f->gz_err = 0;
		if (!f->gz_src || pthread_create(&f->gz_thread, NULL, gz_main, f)) {
			f->st.rotate_errors++; /* path.1 stays uncompressed */
			return 0;
		}
		f->gz_running = true;
	}
	return 0;
}

static int fs_write(struct sink *s, const char *line, size_t len)
{
	struct file_sink *f = (struct file_sink *)s;

	f->st.lines++;
	if (f->o.rotate_bytes && f->size + f->len + len > f->o.rotate_bytes &&
	    f->size + f->len > 0) {
		(void)fs_write_all(f);
		if (f->size)
			(void)rotate(f);
	}
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
	struct stat st;
	int fd;

	if (!f->path) {
		f->fd = STDOUT_FILENO;
		return 0;
	}
	fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (f->fd >= 0 && f->fd != STDOUT_FILENO)
		close(f->fd);
	f->fd = fd;
	f->size = (uint64_t)st.st_size;
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
	gz_wait(f);
	if (done)
		done(ctx);
	if (f->fd >= 0 && f->fd != STDOUT_FILENO)
		close(f->fd);
	free(f->gz_src);
	free(f->path);
	free(f->buf);
	free(f);
}

struct sink *file_sink__new(const char *path, const struct file_sink_opts *opts)
{
	struct file_sink *f = calloc(1, sizeof(*f));
	int r;

	if (!f)
		return NULL;
	f->fd = -1;
	if (opts)
		memcpy(&f->o, opts, opts->sz < sizeof(f->o) ? opts->sz : sizeof(f->o));
	if (f->o.rotate_bytes && !f->o.keep)
		f->o.keep = 5;
	f->buf = malloc(BUF_BYTES);
	if (!f->buf)
		goto fail;
	if (strcmp(path, "-")) {
		if (strlen(path) > 4000) {
			errno = ENAMETOOLONG;
			goto fail;
		}
		f->path = strdup(path);
		if (!f->path)
			goto fail;
	} else if (f->o.rotate_bytes) {
		errno = EINVAL; /* stdout cannot be rotated */
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
