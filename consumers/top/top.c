// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kmon-top: a live view of a node, like top for pods. An unprivileged
 * consumer: per container, exec/s, allocations/s, allocated MiB/s, kernel
 * memory allocated and not yet freed, and the call site allocating most; a
 * header with the agent's health (from its /metrics, when given) and what
 * this view lost. ncursesw draws it (no colours needed); --once and --json
 * print snapshots for scripts instead.
 */
#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <uv.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "consumers/ledger/ledger.h"
#include "consumers/common/cli.h"
#include "consumers/lib/client.h"
#include "consumers/top/toptable.h"
#include "shm/meta.h"
#include "shm/proto.h"
#include "shm/common/clock.h"
#include "shm/common/log.h"

#define HEALTH_BODY_MAX (1u << 20)

struct health {
	bool known, ok;
	char err[128];
	double kernel_dropped, consumers, ready, kubelet_age;
	bool has_kubelet;
};

struct top {
	uv_loop_t loop;
	uv_timer_t tick;
	uv_poll_t keys;
	uv_signal_t sig[2];
	uv_work_t health_req;
	struct kmon_client *client;
	struct toptable *table;
	struct consumer_cli cli; /* --socket */
	const char *agent_metrics;
	double interval;
	bool once, json, curses, keys_on, health_busy, stopping;
	enum top_sort sort;
	char ns_filter[KMON_PROTO_NS_LEN];
	char edit[KMON_PROTO_NS_LEN]; /* namespace being typed after '/' */
	bool editing, attached;
	double last_tick;
	char state[160];
	struct health health, health_next;
	int exit_code;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kmon-top [options]\n"
		"A live view of kmon's events per pod and container.\n\n"
		"  --socket PATH          agent control socket (default /run/kmon/kmon.sock)\n"
		"  --interval SEC         refresh period, 0.2 to 60 (default 1)\n"
		"  --sort KEY             exec (default), alloc, bytes, held or name\n"
		"  --namespace NS         show only pods in NS (change it with '/')\n"
		"  --agent-metrics URL    the agent's /metrics, for the health line\n"
		"  --once                 print one snapshot after one interval and exit\n"
		"  --json                 print snapshots as JSON lines (with --once: one)\n\n"
		"Keys: e a b m n sort by exec/s, alloc/s, MiB/s, held memory, name;\n"
		"      s next sort; / namespace filter (Enter applies, empty clears); q quit.\n");
}

enum { O_INTERVAL = 256, O_SORT, O_NS, O_METRICS, O_ONCE, O_JSON };

/* One of kmon-top's own options (consumer_cli_fn); --socket is consumer_cli's. */
static int top_option(void *ctx, int c, const char *arg)
{
	static const char *const sorts[TOP_SORT_MAX] = { "exec", "alloc", "bytes", "held", "name" };
	struct top *t = ctx;
	char *end;
	int i;

	switch (c) {
	case O_INTERVAL:
		errno = 0;
		t->interval = strtod(arg, &end);
		if (errno || *end || end == arg || t->interval < 0.2 || t->interval > 60)
			return log_fail("--interval: '%s' is not seconds from 0.2 to 60", arg);
		break;
	case O_SORT:
		for (i = 0; i < TOP_SORT_MAX && strcmp(arg, sorts[i]); i++)
			;
		if (i == TOP_SORT_MAX)
			return log_fail("--sort: '%s' is not one of exec, alloc, bytes, held, name",
				    arg);
		t->sort = (enum top_sort)i;
		break;
	case O_NS:
		if (!*arg || strlen(arg) >= sizeof(t->ns_filter))
			return log_fail("--namespace: '%s' is not a namespace name", arg);
		snprintf(t->ns_filter, sizeof(t->ns_filter), "%s", arg);
		break;
	case O_METRICS:
		if (strncmp(arg, "http://", 7) && strncmp(arg, "https://", 8))
			return log_fail("--agent-metrics: '%s' is not an http(s):// URL", arg);
		t->agent_metrics = arg;
		break;
	case O_ONCE:
		t->once = true;
		break;
	case O_JSON:
		t->json = true;
		break;
	}
	return 0;
}

static int parse_args(struct top *t, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "interval", required_argument, NULL, O_INTERVAL },
		{ "sort", required_argument, NULL, O_SORT },
		{ "namespace", required_argument, NULL, O_NS },
		{ "agent-metrics", required_argument, NULL, O_METRICS },
		{ "once", no_argument, NULL, O_ONCE },
		{ "json", no_argument, NULL, O_JSON },
		{ 0 }
	};

	t->interval = 1.0;
	if (consumer_cli__parse(&t->cli, CONSUMER_CLI_SOCKET, "kmon-top", lo, top_option, t, argc,
				argv))
		return -1;
	if (t->cli.help) {
		usage(stdout);
		exit(0);
	}
	t->curses = !t->once && !t->json;
	if (t->curses && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
		return log_fail("not a terminal: use --once or --json for scripts");
	return 0;
}

/* ---- agent health, from its /metrics (on the thread pool: never blocks the view) ---- */

struct body {
	char *p;
	size_t len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct body *b = ctx;
	size_t add = sz * n;
	char *q;

	if (b->len + add > HEALTH_BODY_MAX)
		return 0; /* a /metrics this big is not kmon's: give up */
	q = realloc(b->p, b->len + add + 1);
	if (!q)
		return 0;
	b->p = q;
	memcpy(b->p + b->len, p, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

/* Sums the samples of one family ("name" or "name{...}"). */
static bool metric_sum(const char *text, const char *name, double *out)
{
	size_t nl = strlen(name);
	const char *l;
	bool found = false;

	*out = 0;
	for (l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *v;

		if (strncmp(l, name, nl) || (l[nl] != ' ' && l[nl] != '{'))
			continue;
		v = l + nl;
		if (*v == '{') {
			v = strchr(v, '}');
			if (!v)
				continue;
			v++;
		}
		*out += strtod(v, NULL);
		found = true;
	}
	return found;
}

static void health_work(uv_work_t *req)
{
	struct top *t = req->data;
	struct health *h = &t->health_next;
	struct body b = { 0 };
	CURL *c = curl_easy_init();
	CURLcode rc;
	long code = 0;

	memset(h, 0, sizeof(*h));
	h->known = true;
	if (!c) {
		snprintf(h->err, sizeof(h->err), "out of memory");
		return;
	}
	curl_easy_setopt(c, CURLOPT_URL, t->agent_metrics);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK || code != 200 || !b.p) {
		snprintf(h->err, sizeof(h->err), "%s", rc != CURLE_OK ? curl_easy_strerror(rc) :
			 code != 200 ? "HTTP error" : "empty answer");
		free(b.p);
		return;
	}
	h->ok = metric_sum(b.p, "kmon_ready", &h->ready);
	metric_sum(b.p, "kmon_kernel_dropped_total", &h->kernel_dropped);
	metric_sum(b.p, "kmon_consumers", &h->consumers);
	h->has_kubelet = metric_sum(b.p, "kmon_kubelet_last_success_age_seconds", &h->kubelet_age);
	if (!h->ok)
		snprintf(h->err, sizeof(h->err), "no kmon_ready in the answer");
	free(b.p);
}

static void health_done(uv_work_t *req, int status)
{
	struct top *t = req->data;

	t->health_busy = false;
	if (!status)
		t->health = t->health_next;
}

static void health_start(struct top *t)
{
	if (!t->agent_metrics || t->health_busy)
		return;
	t->health_req.data = t;
	if (!uv_queue_work(&t->loop, &t->health_req, health_work, health_done))
		t->health_busy = true;
}

/* ---- formatting ---- */

static void fmt_bytes(char *out, size_t n, double v)
{
	const char *u = "";
	double a = v < 0 ? -v : v;

	if (a >= 1024.0 * 1024 * 1024) {
		v /= 1024.0 * 1024 * 1024;
		u = "G";
	} else if (a >= 1024.0 * 1024) {
		v /= 1024.0 * 1024;
		u = "M";
	} else if (a >= 1024) {
		v /= 1024;
		u = "K";
	}
	snprintf(out, n, *u ? "%.1f%s" : "%.0f%s", v, u);
}

static void fmt_rate(char *out, size_t n, double v)
{
	if (v >= 100000)
		snprintf(out, n, "%.0fk", v / 1000);
	else if (v >= 100)
		snprintf(out, n, "%.0f", v);
	else
		snprintf(out, n, "%.1f", v);
}

/* A call site by name when the agent hid addresses (its default), through
 * its table, locally; names longer than the column are cut. Else the
 * address, as the agent sent it (ledger__site_name). */
static int name_site(void *ctx, uint64_t site, bool opaque, char *buf, size_t n)
{
	const struct top *t = ctx;
	int r;

	if (!opaque)
		return -1;
	r = kmon_client__symbolize(t->client, site, buf, n);
	return r >= 0 || r == -ENOSPC ? 0 : -1;
}

static void fmt_site(const struct top *t, char *out, size_t n, const struct top_row *r)
{
	ledger__site_name(r->top_call_site, r->top_call_site_opaque, name_site, (void *)t, out, n);
}

static void health_line(const struct top *t, char *out, size_t n)
{
	struct kmon_client_stats cs;
	const struct health *h = &t->health;
	char kub[48] = "";
	size_t len;

	kmon_client__get_stats(t->client, &cs);
	if (!t->agent_metrics)
		len = (size_t)snprintf(out, n, "agent: health with --agent-metrics URL");
	else if (!h->known)
		len = (size_t)snprintf(out, n, "agent: asking %s", t->agent_metrics);
	else if (!h->ok)
		len = (size_t)snprintf(out, n, "agent: /metrics: %s", h->err);
	else {
		if (h->has_kubelet)
			snprintf(kub, sizeof(kub), " kubelet %.0fs ago", h->kubelet_age);
		len = (size_t)snprintf(out, n, "agent: %s, %.0f consumers, kernel drops %.0f%s",
				       h->ready > 0 ? "ready" : "NOT READY", h->consumers,
				       h->kernel_dropped, kub);
	}
	if (len < n)
		snprintf(out + len, n - len, " | view: %" PRIu64 " events, %" PRIu64 " lost",
			 cs.received, cs.lost);
}

/* ---- output ---- */

static void print_json(struct top *t, const struct top_row *rows, size_t n)
{
	struct kmon_client_stats cs;
	cJSON *o = cJSON_CreateObject(), *arr, *r, *h;
	char site[256], *s;
	size_t i;

	if (!o)
		return;
	kmon_client__get_stats(t->client, &cs);
	cJSON_AddStringToObject(o, "node", kmon_client__node(t->client));
	cJSON_AddStringToObject(o, "sort", top_sort_name(t->sort));
	cJSON_AddStringToObject(o, "namespace", t->ns_filter);
	cJSON_AddNumberToObject(o, "received", (double)cs.received);
	cJSON_AddNumberToObject(o, "lost", (double)cs.lost);
	if (t->agent_metrics && t->health.known) {
		h = cJSON_AddObjectToObject(o, "agent");
		if (h && t->health.ok) {
			cJSON_AddBoolToObject(h, "ready", t->health.ready > 0);
			cJSON_AddNumberToObject(h, "consumers", t->health.consumers);
			cJSON_AddNumberToObject(h, "kernel_dropped", t->health.kernel_dropped);
		} else if (h) {
			cJSON_AddStringToObject(h, "error", t->health.err);
		}
	}
	arr = cJSON_AddArrayToObject(o, "rows");
	for (i = 0; arr && i < n; i++) {
		r = cJSON_CreateObject();
		if (!r)
			break;
		cJSON_AddStringToObject(r, "namespace", rows[i].ns);
		cJSON_AddStringToObject(r, "pod", rows[i].pod);
		cJSON_AddStringToObject(r, "container", rows[i].container);
		cJSON_AddNumberToObject(r, "exec_per_s", rows[i].exec_s);
		cJSON_AddNumberToObject(r, "alloc_per_s", rows[i].alloc_s);
		cJSON_AddNumberToObject(r, "alloc_bytes_per_s", rows[i].alloc_bytes_s);
		cJSON_AddNumberToObject(r, "held_bytes", (double)rows[i].held_bytes);
		cJSON_AddNumberToObject(r, "exec_total", (double)rows[i].exec);
		cJSON_AddNumberToObject(r, "oom_kills", (double)rows[i].oom_kills);
		fmt_site(t, site, sizeof(site), &rows[i]);
		cJSON_AddStringToObject(r, "top_call_site", site);
		cJSON_AddItemToArray(arr, r);
	}
	s = cJSON_PrintUnformatted(o);
	if (s) {
		printf("%s\n", s);
		free(s);
	}
	cJSON_Delete(o);
	fflush(stdout);
}

static const char *or_dash(const char *s)
{
	return *s ? s : "-";
}

static void print_text(struct top *t, const struct top_row *rows, size_t n)
{
	char line[256], e[16], a[16], b[16], h[16], site[LEDGER_LABEL_MAX];
	size_t i;

	health_line(t, line, sizeof(line));
	printf("kmon-top  node %s  sort %s  namespace %s\n%s\n",
	       or_dash(kmon_client__node(t->client)), top_sort_name(t->sort),
	       *t->ns_filter ? t->ns_filter : "all", line);
	printf("%-20s %-36s %-20s %7s %8s %7s %8s %4s %s\n", "NAMESPACE", "POD", "CONTAINER",
	       "EXEC/s", "ALLOC/s", "MiB/s", "HELD", "OOM", "CALL SITE");
	for (i = 0; i < n; i++) {
		fmt_rate(e, sizeof(e), rows[i].exec_s);
		fmt_rate(a, sizeof(a), rows[i].alloc_s);
		snprintf(b, sizeof(b), "%.2f", rows[i].alloc_bytes_s / (1024.0 * 1024));
		fmt_bytes(h, sizeof(h), (double)rows[i].held_bytes);
		fmt_site(t, site, sizeof(site), &rows[i]);
		printf("%-20s %-36s %-20s %7s %8s %7s %8s %4" PRIu64 " %s\n", or_dash(rows[i].ns),
		       rows[i].key ? or_dash(rows[i].pod) : "(host)",
		       or_dash(rows[i].container), e, a, b, h, rows[i].oom_kills, site);
	}
	fflush(stdout);
}

/* Column widths for the terminal's width: the numbers keep theirs, the names
 * share what is left (a narrow terminal cuts names, never numbers). */
static void draw(struct top *t, const struct top_row *rows, size_t n)
{
	int cols = COLS, lines = LINES, wn, wp, wc, ws, fixed = 6 + 7 + 6 + 7 + 8 + 4, y;
	char line[512], e[16], a[16], b[16], h[16], site[LEDGER_LABEL_MAX], *cs;
	time_t now = time(NULL);
	struct tm tm;
	size_t i;

	erase();
	localtime_r(&now, &tm);
	snprintf(line, sizeof(line), "kmon-top  node %s  %02d:%02d:%02d  sort %s  namespace %s",
		 or_dash(kmon_client__node(t->client)), tm.tm_hour, tm.tm_min, tm.tm_sec,
		 top_sort_name(t->sort), *t->ns_filter ? t->ns_filter : "all");
	mvaddnstr(0, 0, line, cols);
	health_line(t, line, sizeof(line));
	mvaddnstr(1, 0, line, cols);
	if (t->editing)
		snprintf(line, sizeof(line), "namespace (Enter applies, empty = all): %s_", t->edit);
	else if (!t->attached)
		snprintf(line, sizeof(line), "%s", *t->state ? t->state : "connecting");
	else
		snprintf(line, sizeof(line), "keys: e a b m n sort, s next, / namespace, q quit");
	mvaddnstr(2, 0, line, cols);
	/* At 80 columns: 9 + 15 + 10 for the names, 8 for the call site (its
	 * tail), 3 for OOM kills. */
	ws = cols >= 100 ? 18 : cols >= 72 ? 8 : 0;
	wn = (cols - fixed - ws) * 27 / 100;
	wp = (cols - fixed - ws) * 46 / 100;
	wc = cols - fixed - ws - wn - wp;
	if (wn < 4 || wp < 4 || wc < 4) {
		mvaddnstr(4, 0, "terminal too narrow", cols);
		refresh();
		return;
	}
	attron(A_REVERSE);
	snprintf(line, sizeof(line), "%-*.*s %-*.*s %-*.*s %6s %7s %6s %7s %3s %-*s", wn, wn,
		 "NAMESPACE", wp, wp, "POD", wc, wc, "CONTAINER", "EXEC/s", "ALLOC/s", "MiB/s",
		 "HELD", "OOM", ws, ws ? "CALL SITE" : "");
	mvaddnstr(3, 0, line, cols);
	attroff(A_REVERSE);
	for (i = 0, y = 4; i < n && y < lines; i++, y++) {
		fmt_rate(e, sizeof(e), rows[i].exec_s);
		fmt_rate(a, sizeof(a), rows[i].alloc_s);
		snprintf(b, sizeof(b), "%.2f", rows[i].alloc_bytes_s / (1024.0 * 1024));
		fmt_bytes(h, sizeof(h), (double)rows[i].held_bytes);
		fmt_site(t, site, sizeof(site), &rows[i]);
		/* A narrow column keeps the tail of an address (the head is the
		 * same for every kernel text address) but the head of a name,
		 * '~' marking the cut. */
		cs = site;
		if ((int)strlen(site) > ws && ws > 1) {
			if (strncmp(site, "0x", 2) == 0) {
				cs = site + strlen(site) - ws + 1;
				*--cs = '~';
			} else {
				site[ws - 1] = '~';
				site[ws] = '\0';
			}
		}
		snprintf(line, sizeof(line), "%-*.*s %-*.*s %-*.*s %6s %7s %6s %7s %3" PRIu64 " %-*.*s",
			 wn, wn, or_dash(rows[i].ns), wp, wp,
			 rows[i].key ? or_dash(rows[i].pod) : "(host)", wc, wc,
			 or_dash(rows[i].container), e, a, b, h,
			 rows[i].oom_kills > 999 ? 999 : rows[i].oom_kills, ws, ws, cs);
		mvaddnstr(y, 0, line, cols);
	}
	refresh();
}

static void stop(struct top *t, int code)
{
	if (t->stopping)
		return;
	t->stopping = true;
	t->exit_code = code;
	uv_stop(&t->loop);
}

static void on_tick(uv_timer_t *h)
{
	struct top *t = h->data;
	const struct top_row *rows;
	double now = kmon_clock__sec();
	size_t n;

	n = toptable__snapshot(t->table, now - t->last_tick, t->sort, t->ns_filter, &rows);
	t->last_tick = now;
	if (t->json)
		print_json(t, rows, n);
	else if (t->once)
		print_text(t, rows, n);
	else
		draw(t, rows, n);
	health_start(t);
	if (t->once)
		stop(t, 0);
}

static void redraw_now(struct top *t)
{
	/* A key changes the view, not the window: show the same counts again
	 * by drawing at the next tick, which comes at most an interval later. */
	uv_timer_again(&t->tick);
	on_tick(&t->tick);
}

static void on_key(struct top *t, int ch)
{
	size_t len;

	if (t->editing) {
		len = strlen(t->edit);
		if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
			snprintf(t->ns_filter, sizeof(t->ns_filter), "%s", t->edit);
			t->editing = false;
		} else if (ch == 27) {
			t->editing = false;
		} else if ((ch == KEY_BACKSPACE || ch == 127 || ch == 8) && len) {
			t->edit[len - 1] = '\0';
		} else if (ch > 32 && ch < 127 && len + 1 < sizeof(t->edit)) {
			t->edit[len] = (char)ch;
			t->edit[len + 1] = '\0';
		}
		redraw_now(t);
		return;
	}
	switch (ch) {
	case 'q':
	case 'Q':
		stop(t, 0);
		return;
	case 'e': t->sort = TOP_SORT_EXEC; break;
	case 'a': t->sort = TOP_SORT_ALLOC; break;
	case 'b': t->sort = TOP_SORT_BYTES; break;
	case 'm': t->sort = TOP_SORT_HELD; break;
	case 'n': t->sort = TOP_SORT_NAME; break;
	case 's': t->sort = (enum top_sort)((t->sort + 1) % TOP_SORT_MAX); break;
	case '/':
		t->editing = true;
		t->edit[0] = '\0';
		break;
	case KEY_RESIZE:
		break;
	default:
		return;
	}
	redraw_now(t);
}

static void on_stdin(uv_poll_t *h, int status, int events)
{
	struct top *t = h->data;
	int ch;

	(void)events;
	if (status < 0) {
		stop(t, 1);
		return;
	}
	while ((ch = getch()) != ERR && !t->stopping)
		on_key(t, ch);
}

static void on_event(void *ctx, const struct kmon_event *ev, const struct kmon_meta *meta,
		     uint64_t seq, bool replay)
{
	struct top *t = ctx;

	(void)seq;
	if (!replay)
		toptable__add(t->table, ev, meta);
}

static void on_state(void *ctx, enum kmon_client_state s, const char *why)
{
	struct top *t = ctx;

	snprintf(t->state, sizeof(t->state), "%s", why);
	t->attached = s == KMON_CLIENT_ATTACHED;
	if (!t->curses && s != KMON_CLIENT_CONNECTING)
		fprintf(stderr, "kmon-top: %s\n", why);
	if (s == KMON_CLIENT_REFUSED)
		stop(t, 1);
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	stop(h->data, 0);
}

static void close_all(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int main(int argc, char **argv)
{
	struct kmon_client_cbs cb = { .on_event = on_event, .on_state = on_state };
	struct kmon_client_opts co;
	struct top t;
	int i, err;

	log_init("kmon-top", LOG_INFO);
	memset(&t, 0, sizeof(t));
	setlocale(LC_ALL, "");
	if (parse_args(&t, argc, argv))
		return 2;
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return log_fail("cannot initialise libcurl"), 1;
	if (uv_loop_init(&t.loop))
		return log_fail("cannot create the event loop"), 1;
	t.table = toptable__new();
	if (!t.table)
		return log_fail("out of memory"), 1;
	consumer_cli__client_opts(&t.cli, &co);
	co.reconnect = !t.once;
	t.client = kmon_client__new(&t.loop, &co, &cb, &t);
	if (!t.client)
		return log_fail("cannot create the client: %s", strerror(errno)), 1;
	if (t.curses) {
		if (!initscr())
			return log_fail("cannot start curses on this terminal"), 1;
		cbreak();
		noecho();
		nodelay(stdscr, TRUE);
		keypad(stdscr, TRUE);
		curs_set(0);
		uv_poll_init(&t.loop, &t.keys, STDIN_FILENO);
		t.keys.data = &t;
		uv_poll_start(&t.keys, UV_READABLE, on_stdin);
	}
	for (i = 0; i < 2; i++) {
		uv_signal_init(&t.loop, &t.sig[i]);
		t.sig[i].data = &t;
		uv_signal_start(&t.sig[i], on_signal, i ? SIGTERM : SIGINT);
	}
	uv_timer_init(&t.loop, &t.tick);
	t.tick.data = &t;
	t.last_tick = kmon_clock__sec();
	uv_timer_start(&t.tick, on_tick, (uint64_t)(t.interval * 1000),
		       (uint64_t)(t.interval * 1000));
	health_start(&t);
	if ((err = kmon_client__start(t.client)))
		log_fail("cannot start: %s", strerror(-err));
	else
		uv_run(&t.loop, UV_RUN_DEFAULT);
	if (t.curses)
		endwin();
	kmon_client__close(t.client, NULL);
	uv_walk(&t.loop, close_all, NULL);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&t.loop))
		fprintf(stderr, "kmon-top: loop closed with handles open\n");
	toptable__free(t.table);
	curl_global_cleanup();
	return err ? 1 : t.exit_code;
}
