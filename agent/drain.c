// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/drain.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "agent/kring.h"
#include "bpf/event_util.h"
#include "shm/common/clock.h"

struct drain {
	struct drain_opts opts;
	struct kring *kr;
	int stop_fd;
	int epfd;
	pthread_t thread;
	bool running;
	uint64_t batch_len;
	uint64_t batch_t0;
	bool polling_on;
	/* Written by the drain thread, read by others: relaxed atomics suffice
	 * for monotonic statistics. */
	_Atomic uint64_t events[KMON_EV_TYPE_MAX + 1];
	_Atomic uint64_t invalid;
	_Atomic uint64_t batches;
	_Atomic uint64_t max_batch_ns;
	_Atomic uint64_t max_batch_len;
};

static void bump_max(_Atomic uint64_t *m, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);

	while (v > cur && !atomic_compare_exchange_weak_explicit(m, &cur, v, memory_order_relaxed,
								  memory_order_relaxed))
		;
}

/* A batch is at most DRAIN_BATCH_MAX records: under a flood the ring may
 * never be empty, and consumers see records while the flood goes on. Its
 * space goes back to the programs at the end of each batch (kring.h). */
#define DRAIN_BATCH_MAX 256

static void end_batch(struct drain *d)
{
	uint64_t t1;

	if (d->opts.on_batch)
		d->opts.on_batch(d->opts.ctx);
	t1 = kmon_clock__ns();
	atomic_fetch_add_explicit(&d->batches, 1, memory_order_relaxed);
	bump_max(&d->max_batch_ns, t1 - d->batch_t0);
	bump_max(&d->max_batch_len, d->batch_len);
	d->batch_t0 = t1;
	d->batch_len = 0;
}

static void on_sample(void *ctx, const void *data, uint32_t len)
{
	struct drain *d = ctx;
	struct kmon_event ev;

	if (kmon_event_decode(data, len, &ev)) {
		atomic_fetch_add_explicit(&d->invalid, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&d->events[ev.event_type], 1, memory_order_relaxed);
	d->opts.on_event(d->opts.ctx, &ev);
	d->batch_len++;
}

/* Batches until the ring is empty. True when it read anything. */
static bool consume_batch(struct drain *d)
{
	unsigned n, total = 0;

	d->batch_t0 = kmon_clock__ns();
	do {
		d->batch_len = 0;
		n = kring__consume(d->kr, DRAIN_BATCH_MAX, on_sample, d);
		if (d->batch_len)
			end_batch(d);
		total += n;
	} while (n == DRAIN_BATCH_MAX);
	return total > 0;
}

static void set_polling(struct drain *d, uint32_t on)
{
	d->polling_on = on;
	if (!d->opts.polling)
		return;
	*d->opts.polling = on;
	/* The flag must be visible before we look at the ring again. */
	atomic_thread_fence(memory_order_seq_cst);
}

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	struct epoll_event evs[2];
	int timeout = 100;

	for (;;) {
		int n = epoll_wait(d->epfd, evs, 2, timeout);
		bool stop = false;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < n; i++)
			if (evs[i].data.fd == d->stop_fd)
				stop = true;
		/* While records flow, poll every 10 ms and tell the programs so:
		 * they then wake us only each time an eighth of the ring waits
		 * (a wake-up costs far more than a record). When a pass finds
		 * nothing, leave polling mode, then look once more for records
		 * that came in while producers still thought we were polling.
		 * Never sleep long: two records submitted at once on two CPUs can
		 * both see a backlog and both skip the wake-up. */
		if (consume_batch(d)) {
			set_polling(d, 1);
			timeout = 10;
		} else if (d->polling_on) {
			set_polling(d, 0);
			if (consume_batch(d)) {
				set_polling(d, 1);
				timeout = 10;
			} else {
				timeout = 100;
			}
		}
		if (stop)
			break;
	}
	return NULL;
}

struct drain *drain__start(const struct drain_opts *opts)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct drain *d;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->opts = *opts;
	d->stop_fd = -1;
	d->epfd = -1;
	d->kr = kring__open(opts->ringbuf_fd);
	if (!d->kr)
		goto fail;
	d->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->stop_fd < 0)
		goto fail;
	/* Our own epoll set: the ring buffer's map plus a stop eventfd, so
	 * stopping needs no timeout polling. */
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0)
		goto fail;
	ev.data.fd = kring__fd(d->kr);
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
		goto fail;
	ev.data.fd = d->stop_fd;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->stop_fd, &ev))
		goto fail;
	ret = pthread_create(&d->thread, NULL, drain_main, d);
	if (ret) {
		errno = ret;
		goto fail;
	}
	pthread_setname_np(d->thread, "kmon-drain");
	d->running = true;
	return d;
fail:
	ret = errno;
	drain__free(d);
	errno = ret;
	return NULL;
}

void drain__stop(struct drain *d)
{
	uint64_t one = 1;

	if (!d || !d->running)
		return;
	if (write(d->stop_fd, &one, sizeof(one)) != sizeof(one))
		abort(); /* an eventfd write of 1 cannot fail short of a bug */
	pthread_join(d->thread, NULL);
	d->running = false;
}

void drain__consume_stopped(struct drain *d)
{
	if (d && !d->running)
		consume_batch(d);
}

void drain__free(struct drain *d)
{
	if (!d)
		return;
	drain__stop(d);
	kring__free(d->kr);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	if (d->epfd >= 0)
		close(d->epfd);
	free(d);
}

void drain__get_stats(struct drain *d, struct drain_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int t = 0; t <= KMON_EV_TYPE_MAX; t++)
		out->events[t] = atomic_load_explicit(&d->events[t], memory_order_relaxed);
	out->invalid = atomic_load_explicit(&d->invalid, memory_order_relaxed);
	out->batches = atomic_load_explicit(&d->batches, memory_order_relaxed);
	out->max_batch_ns = atomic_load_explicit(&d->max_batch_ns, memory_order_relaxed);
	out->max_batch_len = atomic_load_explicit(&d->max_batch_len, memory_order_relaxed);
}

void drain__reset_max(struct drain *d)
{
	atomic_store_explicit(&d->max_batch_ns, 0, memory_order_relaxed);
	atomic_store_explicit(&d->max_batch_len, 0, memory_order_relaxed);
}
