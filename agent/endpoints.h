/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's HTTP endpoints (libmicrohttpd, its own thread):
 *   /healthz  200 while the event loop keeps ticking (heartbeat < 10 s old)
 *   /readyz   200 once programs are attached, the drain runs and the first
 *             /proc scan is done; 503 with the reason before
 *   /metrics  Prometheus text, rendered by the caller's callback
 * Started after capabilities are dropped, so the thread has none: the port
 * must be >= 1024 (the chart uses 9470).
 */
#ifndef KMON_AGENT_ENDPOINTS_H
#define KMON_AGENT_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>

struct metrics_text;
struct endpoints;

struct endpoints_opts {
	size_t sz;
	const char *addr; /* HOST:PORT */
	/* Called on the HTTP thread; must be thread-safe. Returns NULL when
	 * ready, else a short reason. */
	const char *(*not_ready)(void *ctx);
	/* Called on the HTTP thread; fills m. */
	void (*render_metrics)(void *ctx, struct metrics_text *m);
	void *ctx;
};

struct endpoints *endpoints__start(const struct endpoints_opts *o, char *err, size_t errlen);
/* Called by the loop thread on a timer: the liveness signal. */
void endpoints__heartbeat(struct endpoints *e);
void endpoints__stop(struct endpoints *e);

#endif
