// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/forward/http_sink.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
/* A server's Retry-After is honoured up to this: a peer must not park the
 * queue for hours (it fills and drops, counted, meanwhile). */
#define RETRY_AFTER_MAX_MS 60000
/* Bytes of a server's answer kept to say why a request failed; the rest is
 * counted and discarded. */
#define ANSWER_KEEP 200

struct batch {
	struct batch *next;
	char *data;
	size_t len;      /* bytes to send (compressed) */
	uint64_t lines;
};

struct sock_ctx {
	uv_poll_t poll;
	curl_socket_t fd;
	struct http_sink *h;
};

struct http_sink {
	struct sink s;
	struct http_sink_opts o;
	char *url;
	struct compressor *z;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hdrs;
	uv_timer_t curl_timer;
	uv_timer_t flush_timer;
	uv_timer_t retry_timer;
	uv_timer_t close_timer;
	/* batch being filled */
	char *cur;
	size_t cur_len, cur_cap;
	uint64_t cur_lines;
	/* sealed batches, oldest first; head is in flight when in_flight */
	struct batch *head, *tail;
	size_t queued_bytes;
	bool in_flight;
	bool retry_pending;
	unsigned backoff_ms;
	char errbuf[CURL_ERROR_SIZE];
	char answer[ANSWER_KEEP]; /* start of the in-flight request's answer */
	size_t answer_len;
	struct sink_stats st;
	long last_status_logged;
	bool closing;
	bool finished;
	void (*done)(void *ctx);
	void *done_ctx;
	int open_handles;
};

static void start_next(struct http_sink *h);
static void finish_close(struct http_sink *h);
static void free_sink(struct http_sink *h);

static void log_once(struct http_sink *h, long code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void log_once(struct http_sink *h, long code, const char *fmt, ...)
{
	va_list ap;

	/* One line per change of outcome, not one per batch. */
	if (h->last_status_logged == code)
		return;
	h->last_status_logged = code;
	fprintf(stderr, "kmon-forward: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* libcurl writes an answer's body to stdout unless told otherwise, and stdout
 * may be the event stream (or the pod's log). The body belongs to a network
 * peer: it is counted, its first bytes kept for the log of a failure, and
 * dropped; memory stays bounded however much it sends. */
static size_t on_answer(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_sink *h = userp;
	size_t len = size * nmemb, keep = sizeof(h->answer) - h->answer_len;

	if (keep > len)
		keep = len;
	memcpy(h->answer + h->answer_len, data, keep);
	h->answer_len += keep;
	h->st.response_bytes += len;
	return len;
}

/* The kept answer as one printable line to quote: bytes outside printable
 * ASCII (a newline, an escape sequence for the terminal), quotes and
 * backslashes become \xNN. */
static const char *answer_text(struct http_sink *h, char *out, size_t cap)
{
	static const char hx[] = "0123456789abcdef";
	size_t o = 0, n = h->answer_len;

	while (n && strchr(" \t\r\n", h->answer[n - 1]))
		n--;
	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)h->answer[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hx[c >> 4];
			out[o++] = hx[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

static void drop_batch(struct http_sink *h, struct batch *b)
{
	h->st.dropped += b->lines;
	h->st.dropped_batches++;
	h->queued_bytes -= b->len;
	free(b->data);
	free(b);
}

/* Keeps the queue within its bound by dropping the oldest batches that are
 * not being sent right now. */
static void enforce_bound(struct http_sink *h)
{
	struct batch **pp = h->in_flight ? &h->head->next : &h->head;

	while (h->queued_bytes + h->cur_len > h->o.max_queue_bytes && *pp) {
		struct batch *b = *pp;
		*pp = b->next;
		if (h->tail == b)
			h->tail = h->in_flight ? h->head : NULL;
		if (!h->head)
			h->tail = NULL;
		drop_batch(h, b);
	}
}

static void seal(struct http_sink *h)
{
	struct batch *b;
	int r;

	if (!h->cur_lines)
		return;
	b = calloc(1, sizeof(*b));
	if (!b)
		goto drop;
	b->lines = h->cur_lines;
	if (h->o.encoder) {
		char *body;
		size_t body_len;

		r = h->o.encoder->encode(h->o.encoder->ctx, h->cur, h->cur_len, h->cur_lines, &body,
					 &body_len);
		if (r) {
			log_once(h, -1000 + r, "%s: cannot encode a batch of %llu lines (%s); "
				 "dropping it", h->url, (unsigned long long)h->cur_lines,
				 strerror(-r));
			free(b);
			goto drop;
		}
		r = compressor__compress(h->z, body, body_len, &b->data, &b->len);
		free(body);
	} else {
		r = compressor__compress(h->z, h->cur, h->cur_len, &b->data, &b->len);
	}
	if (r) {
		free(b);
		goto drop;
	}
	if (h->tail)
		h->tail->next = b;
	else
		h->head = b;
	h->tail = b;
	h->queued_bytes += b->len;
	h->cur_len = 0;
	h->cur_lines = 0;
	enforce_bound(h);
	start_next(h);
	return;
drop:
	h->st.dropped += h->cur_lines;
	h->st.dropped_batches++;
	h->cur_len = 0;
	h->cur_lines = 0;
}

static int hs_write(struct sink *s, const char *line, size_t len)
{
	struct http_sink *h = (struct http_sink *)s;

	h->st.lines++;
	if (h->cur_len + len > h->cur_cap) {
		seal(h);
		if (len > h->cur_cap) {
			h->st.dropped++;
			return -E2BIG;
		}
	}
	memcpy(h->cur + h->cur_len, line, len);
	h->cur_len += len;
	h->cur_lines++;
	if (h->cur_lines >= h->o.batch_lines || h->cur_len >= h->o.batch_bytes)
		seal(h);
	else if (h->queued_bytes + h->cur_len > h->o.max_queue_bytes)
		enforce_bound(h);
	return 0;
}

static void hs_flush(struct sink *s)
{
	/* Batches leave on size or on the flush timer; nothing to do per turn. */
	(void)s;
}

static void on_flush_timer(uv_timer_t *t)
{
	seal(t->data);
}

static void on_retry(uv_timer_t *t)
{
	struct http_sink *h = t->data;

	h->retry_pending = false;
	start_next(h);
}

static void complete(struct http_sink *h, CURLcode cc, long status)
{
	struct batch *b = h->head;
	char said[ANSWER_KEEP * 4 + 1];
	unsigned jitter, wait_ms;
	curl_off_t ra = 0;

	h->in_flight = false;
	answer_text(h, said, sizeof(said));
	if (cc == CURLE_OK && status >= 200 && status < 300) {
		uint64_t rej = 0;

		h->head = b->next;
		if (!h->head)
			h->tail = NULL;
		if (h->o.encoder && h->o.encoder->rejected)
			rej = h->o.encoder->rejected(h->o.encoder->ctx, h->answer, h->answer_len);
		if (rej > b->lines)
			rej = b->lines;
		if (rej) {
			/* Accepted, but not all of it: the receiver's call, not a
			 * reason to resend. Counted, said once per change. */
			h->st.rejected += rej;
			log_once(h, 1, "%s accepted a batch of %llu lines but rejected %llu "
				 "(partial success)%s%s%s", h->url, (unsigned long long)b->lines,
				 (unsigned long long)rej, said[0] ? ": \"" : "", said,
				 said[0] ? "\"" : "");
		}
		h->st.sent += b->lines - rej;
		h->st.batches++;
		h->queued_bytes -= b->len;
		free(b->data);
		free(b);
		h->backoff_ms = BACKOFF_MIN_MS;
		if (h->last_status_logged && !rej) {
			fprintf(stderr, "kmon-forward: %s accepts batches again\n", h->url);
			h->last_status_logged = 0;
		}
		start_next(h);
		return;
	}
	if (cc == CURLE_OK && status >= 400 && status < 500 && status != 408 && status != 429) {
		log_once(h, status, "%s answered HTTP %ld; dropping the batch of %llu lines "
			 "(retrying cannot help)%s%s%s", h->url, status,
			 (unsigned long long)b->lines, said[0] ? ": \"" : "", said,
			 said[0] ? "\"" : "");
		h->head = b->next;
		if (!h->head)
			h->tail = NULL;
		drop_batch(h, b);
		start_next(h);
		return;
	}
	h->st.retried++;
	jitter = (unsigned)rand() % (h->backoff_ms / 2 + 1);
	wait_ms = h->backoff_ms + jitter;
	/* 429/503 may say when to come back (RFC 9110 10.2.3), as seconds or
	 * as an HTTP-date: libcurl reads both and gives seconds from now. */
	if (cc == CURLE_OK && (status == 429 || status == 503) &&
	    curl_easy_getinfo(h->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0) {
		wait_ms = ra > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : (unsigned)ra * 1000;
		h->st.retry_after++;
	}
	if (cc != CURLE_OK)
		log_once(h, -(long)cc, "%s: %s; retrying with backoff", h->url,
			 h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
	else if (ra > 0)
		log_once(h, status, "%s answered HTTP %ld; retrying in %u s as its Retry-After "
			 "says%s%s%s", h->url, status, wait_ms / 1000, said[0] ? ": \"" : "", said,
			 said[0] ? "\"" : "");
	else
		log_once(h, status, "%s answered HTTP %ld; retrying with backoff%s%s%s", h->url,
			 status, said[0] ? ": \"" : "", said, said[0] ? "\"" : "");
	h->retry_pending = true;
	uv_timer_start(&h->retry_timer, on_retry, wait_ms, 0);
	h->backoff_ms = h->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : h->backoff_ms * 2;
}

static void check_done(struct http_sink *h)
{
	CURLMsg *m;
	int left;
	long status = 0;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		curl_multi_remove_handle(h->multi, m->easy_handle);
		complete(h, m->data.result, status);
	}
	if (h->closing && !h->head && !h->in_flight)
		finish_close(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct sock_ctx *sc = p->data;
	struct http_sink *h = sc->h;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, sc->fd, flags, &running);
	check_done(h);
}

static void on_sock_closed(uv_handle_t *hd)
{
	struct sock_ctx *sc = hd->data;
	struct http_sink *h = sc->h;

	free(sc);
	if (--h->open_handles == 0 && h->finished)
		free_sink(h);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_sink *h = userp;
	struct sock_ctx *sc = socketp;
	int ev = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (sc) {
			uv_poll_stop(&sc->poll);
			curl_multi_assign(h->multi, fd, NULL);
			uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
		}
		return 0;
	}
	if (!sc) {
		sc = calloc(1, sizeof(*sc));
		if (!sc)
			return -1;
		sc->fd = fd;
		sc->h = h;
		if (uv_poll_init_socket(h->o.loop, &sc->poll, fd)) {
			free(sc);
			return -1;
		}
		sc->poll.data = sc;
		h->open_handles++;
		curl_multi_assign(h->multi, fd, sc);
	}
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&sc->poll, ev, on_poll);
	return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
	struct http_sink *h = t->data;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct http_sink *h = userp;

	(void)m;
	if (timeout_ms < 0)
		uv_timer_stop(&h->curl_timer);
	else
		uv_timer_start(&h->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

static void start_next(struct http_sink *h)
{
	struct batch *b = h->head;

	if (h->in_flight || h->retry_pending || !b)
		return;
	h->errbuf[0] = '\0';
	h->answer_len = 0;
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, b->data);
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
	if (curl_multi_add_handle(h->multi, h->easy) != CURLM_OK) {
		complete(h, CURLE_FAILED_INIT, 0);
		return;
	}
	h->in_flight = true;
}

static void hs_stats(struct sink *s, struct sink_stats *out)
{
	struct http_sink *h = (struct http_sink *)s;

	*out = h->st;
	out->queued_bytes = h->queued_bytes + h->cur_len;
}

/* What http_sink__new allocated, whether it got that far or not. */
static void free_parts(struct http_sink *h)
{
	curl_easy_cleanup(h->easy);
	curl_multi_cleanup(h->multi);
	curl_slist_free_all(h->hdrs);
	compressor__free(h->z);
	free(h->cur);
	free(h->url);
	free(h);
}

static void free_sink(struct http_sink *h)
{
	struct batch *b;

	while ((b = h->head)) {
		h->head = b->next;
		drop_batch(h, b);
	}
	if (h->done)
		h->done(h->done_ctx);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, NULL);
	free_parts(h);
}

static void on_handle_closed(uv_handle_t *hd)
{
	struct http_sink *h = hd->data;

	if (--h->open_handles == 0)
		free_sink(h);
}

/* Called when the queue is empty, or when time is up: everything left is
 * counted as dropped (in free_sink), the handles close, then the sink goes. */
static void finish_close(struct http_sink *h)
{
	if (h->finished)
		return;
	h->finished = true;
	if (h->in_flight) {
		/* Releases curl's sockets: their polls close via sock_cb. */
		curl_multi_remove_handle(h->multi, h->easy);
		h->in_flight = false;
	}
	h->open_handles += 4;
	uv_close((uv_handle_t *)&h->curl_timer, on_handle_closed);
	uv_close((uv_handle_t *)&h->flush_timer, on_handle_closed);
	uv_close((uv_handle_t *)&h->retry_timer, on_handle_closed);
	uv_close((uv_handle_t *)&h->close_timer, on_handle_closed);
}

static void on_close_timeout(uv_timer_t *t)
{
	struct http_sink *h = t->data;

	fprintf(stderr, "kmon-forward: %s: giving up on %zu queued bytes at exit\n", h->url,
		h->queued_bytes);
	finish_close(h);
}

static void hs_close(struct sink *s, void (*done)(void *ctx), void *ctx)
{
	struct http_sink *h = (struct http_sink *)s;

	h->closing = true;
	h->done = done;
	h->done_ctx = ctx;
	seal(h);
	uv_timer_stop(&h->flush_timer);
	if (!h->head && !h->in_flight) {
		finish_close(h);
		return;
	}
	uv_timer_start(&h->close_timer, on_close_timeout, (uint64_t)(h->o.close_timeout * 1000),
		       0);
}

struct sink *http_sink__new(const struct http_sink_opts *opts)
{
	struct http_sink *h;
	unsigned i;

	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		errno = EIO;
		return NULL;
	}
	errno = 0;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->o = *opts;
	if (h->o.close_timeout <= 0)
		h->o.close_timeout = 10;
	h->url = strdup(opts->url);
	h->cur_cap = opts->batch_bytes + 4096;
	h->cur = malloc(h->cur_cap);
	h->multi = curl_multi_init();
	h->easy = curl_easy_init();
	if (!h->url || !h->cur || !h->multi || !h->easy)
		goto fail;
	h->z = compressor__new(opts->codec, opts->level);
	if (!h->z)
		goto fail;
	h->backoff_ms = BACKOFF_MIN_MS;
	if (opts->encoder) {
		char ct[128];

		snprintf(ct, sizeof(ct), "Content-Type: %s", opts->encoder->content_type);
		h->hdrs = curl_slist_append(NULL, ct);
	} else {
		h->hdrs = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
	}
	if (h->hdrs && compress__content_encoding(opts->codec)) {
		char ce[64];

		strcpy(ce, "Content-Encoding: ");
		strcat(ce, compress__content_encoding(opts->codec));
		h->hdrs = curl_slist_append(h->hdrs, ce);
	}
	/* No "Expect: 100-continue" round trip before each batch. */
	if (h->hdrs)
		h->hdrs = curl_slist_append(h->hdrs, "Expect:");
	for (i = 0; h->hdrs && i < opts->n_headers; i++)
		h->hdrs = curl_slist_append(h->hdrs, opts->headers[i]);
	if (!h->hdrs)
		goto fail;
	if (curl_easy_setopt(h->easy, CURLOPT_URL, h->url) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->hdrs) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_answer) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, 30000L) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
		errno = EINVAL;
		goto fail;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	uv_timer_init(opts->loop, &h->curl_timer);
	uv_timer_init(opts->loop, &h->flush_timer);
	uv_timer_init(opts->loop, &h->retry_timer);
	uv_timer_init(opts->loop, &h->close_timer);
	h->curl_timer.data = h->flush_timer.data = h->retry_timer.data = h->close_timer.data = h;
	uv_timer_start(&h->flush_timer, on_flush_timer, (uint64_t)(opts->flush_interval * 1000),
		       (uint64_t)(opts->flush_interval * 1000));
	h->s.write = hs_write;
	h->s.flush = hs_flush;
	h->s.reopen = NULL;
	h->s.get_stats = hs_stats;
	h->s.close = hs_close;
	return &h->s;
fail:
	i = errno ? (unsigned)errno : ENOMEM;
	free_parts(h);
	errno = (int)i;
	return NULL;
}
