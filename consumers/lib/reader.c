// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/lib/reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "shm/meta.h"

_Static_assert(sizeof(struct kmon_read_rec) == 176, "kmon_read_rec layout (bindings)");
_Static_assert(__builtin_offsetof(struct kmon_read_rec, ev) == 32, "ev offset");
/* The Python bindings (consumers/python) map struct kmon_meta with ctypes. */
_Static_assert(sizeof(struct kmon_meta) == 896, "kmon_meta layout (bindings)");
_Static_assert(sizeof(struct kmon_event) == sizeof(((struct kmon_read_rec *)0)->ev),
	       "event fits");

/* One turn of the loop delivers at most one client batch (1024 records, plus
 * the LOST records between them): the queue holds two, so it never overflows;
 * if it ever did, the excess is counted as lost in-band, never dropped silently. */
#define QUEUE_RECS 4096u

struct kmon_reader {
	uv_loop_t loop;
	uv_timer_t timer;
	struct kmon_client *client;
	struct kmon_read_rec *q;
	unsigned head, len;
	uint64_t overflow, overflow_since;
	uint64_t meta_gen;
	enum kmon_client_state state;
	char why[256];
	bool timed_out, closed;
	struct kmon_client_stats final;
};

static struct kmon_read_rec *push(struct kmon_reader *r)
{
	if (r->len == QUEUE_RECS)
		return NULL;
	return &r->q[(r->head + r->len++) % QUEUE_RECS];
}

static void on_event(void *ctx, const struct kmon_event *ev, const struct kmon_meta *meta,
		     uint64_t seq, bool replay)
{
	struct kmon_reader *r = ctx;
	struct kmon_read_rec *rec = push(r);

	if (!rec) {
		if (!r->overflow++)
			r->overflow_since = seq;
		return;
	}
	memset(rec, 0, sizeof(*rec));
	rec->kind = KMON_READ_EVENT;
	rec->flags = replay ? KMON_READF_REPLAY : 0;
	rec->seq = seq;
	rec->meta = meta;
	memcpy(rec->ev, ev, sizeof(*ev));
}

static void on_lost(void *ctx, uint64_t count, uint64_t since_seq)
{
	struct kmon_reader *r = ctx;
	struct kmon_read_rec *rec = push(r);

	if (!rec) {
		if (!r->overflow)
			r->overflow_since = since_seq;
		r->overflow += count;
		return;
	}
	memset(rec, 0, sizeof(*rec));
	rec->kind = KMON_READ_LOST;
	rec->seq = since_seq;
	rec->count = count;
}

static void on_state(void *ctx, enum kmon_client_state s, const char *why)
{
	struct kmon_reader *r = ctx;

	r->state = s;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
}

static void on_meta(void *ctx, const struct kmon_meta *meta)
{
	struct kmon_reader *r = ctx;

	(void)meta;
	r->meta_gen++;
}

static void on_timer(uv_timer_t *t)
{
	struct kmon_reader *r = t->data;

	r->timed_out = true;
}

struct kmon_reader *kmon_reader__new(const struct kmon_client_opts *opts)
{
	static const struct kmon_client_cbs cbs = {
		.on_event = on_event, .on_lost = on_lost, .on_state = on_state, .on_meta = on_meta,
	};
	struct kmon_reader *r = calloc(1, sizeof(*r));
	int e;

	if (!r)
		return NULL;
	r->q = calloc(QUEUE_RECS, sizeof(*r->q));
	if (!r->q)
		goto fail_free;
	if (uv_loop_init(&r->loop)) {
		errno = ENOMEM;
		goto fail_free;
	}
	if (uv_timer_init(&r->loop, &r->timer))
		goto fail_loop;
	r->timer.data = r;
	r->client = kmon_client__new(&r->loop, opts, &cbs, r);
	if (!r->client)
		goto fail_timer;
	e = kmon_client__start(r->client);
	if (e) {
		errno = -e;
		kmon_client__close(r->client, NULL);
		goto fail_timer;
	}
	return r;
fail_timer:
	e = errno;
	uv_close((uv_handle_t *)&r->timer, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	errno = e;
fail_loop:
	e = errno;
	(void)uv_loop_close(&r->loop);
	errno = e;
fail_free:
	e = errno;
	free(r->q);
	free(r);
	errno = e;
	return NULL;
}

static unsigned pop(struct kmon_reader *r, struct kmon_read_rec *out, unsigned n)
{
	unsigned k = 0;

	/* What the queue could not hold is reported where it happened: after
	 * the records that did fit. */
	while (k < n && r->len) {
		out[k++] = r->q[r->head];
		r->head = (r->head + 1) % QUEUE_RECS;
		r->len--;
	}
	if (k < n && !r->len && r->overflow) {
		memset(&out[k], 0, sizeof(out[k]));
		out[k].kind = KMON_READ_LOST;
		out[k].seq = r->overflow_since;
		out[k].count = r->overflow;
		r->overflow = 0;
		k++;
	}
	return k;
}

static bool gone(const struct kmon_reader *r)
{
	return r->state == KMON_CLIENT_REFUSED;
}

int kmon_reader__read(struct kmon_reader *r, struct kmon_read_rec *out, unsigned n,
		      int timeout_ms)
{
	if (!n)
		return -EINVAL;
	if (r->len || r->overflow)
		return (int)pop(r, out, n);
	/* One non-blocking turn first: records already in the ring need no wait. */
	uv_run(&r->loop, UV_RUN_NOWAIT);
	if (r->len || r->overflow)
		return (int)pop(r, out, n);
	if (gone(r))
		return -ECONNREFUSED;
	if (!timeout_ms)
		return 0;
	r->timed_out = false;
	if (timeout_ms > 0)
		uv_timer_start(&r->timer, on_timer, (uint64_t)timeout_ms, 0);
	while (!r->len && !r->overflow && !r->timed_out && !gone(r))
		uv_run(&r->loop, UV_RUN_ONCE);
	uv_timer_stop(&r->timer);
	if (r->len || r->overflow)
		return (int)pop(r, out, n);
	return gone(r) ? -ECONNREFUSED : 0;
}

const char *kmon_reader__why(const struct kmon_reader *r)
{
	return r->why;
}

enum kmon_client_state kmon_reader__state(const struct kmon_reader *r)
{
	return r->state;
}

uint64_t kmon_reader__meta_gen(const struct kmon_reader *r)
{
	return r->meta_gen;
}

const char *kmon_reader__node(const struct kmon_reader *r)
{
	return r->client ? kmon_client__node(r->client) : "";
}

void kmon_reader__get_stats(const struct kmon_reader *r, struct kmon_client_stats *out)
{
	if (r->client)
		kmon_client__get_stats(r->client, out);
	else
		*out = r->final;
}

static void on_client_closed(void *ctx)
{
	struct kmon_reader *r = ctx;

	r->closed = true;
}

static void close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void kmon_reader__free(struct kmon_reader *r)
{
	if (!r)
		return;
	/* The client delivers what its ring holds while closing: into the
	 * queue, which is freed with the reader. */
	kmon_client__close(r->client, on_client_closed);
	uv_close((uv_handle_t *)&r->timer, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	uv_walk(&r->loop, close_cb, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&r->loop);
	free(r->q);
	free(r);
}
