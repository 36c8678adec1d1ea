// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/tracker.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/types.h>
#include "agent/containers.h"
#include "agent/fanout.h"
#include "agent/loader.h"
#include "shm/common/log.h"
#include "agent/pidset.h"
#include "agent/pod_table.h"
#include "agent/proc_scan.h"
#include "bpf/kmon_event.h"
#include "k8s/cgroup.h"
#include "k8s/cgroup_v2.h"
#include "agent/kubelet_proc.h"
#include "k8s/podlist.h"
#include "shm/common/clock.h"
#include "shm/meta.h"

#define FORGET_AFTER_SCANS 5    /* a container unseen this many scans is forgotten */
#define POD_GRACE_SEC 60.0      /* pods missing from the PodList stay known this long */
#define UNKNOWN_REFRESH_MIN 2.0 /* at most one "new container" refresh per 2 s */
#define BACKOFF_MAX_SEC 60.0

struct scan_work {
	uv_work_t req;
	struct tracker *t;
	char proc_root[256];
	struct cgroup_v2_where v2; /* v2.mount "" = no cgroup v2 hierarchy: no cgroup ids */
	uint32_t self;
	struct proc_scan scan;
	int err;
};

struct pods_work {
	uv_work_t req;
	struct tracker *t;
	struct kubelet_proc *k;
	char *body;
	size_t len;
	long status;
	int err;
	char why[512];
	struct podlist *pl;
	double ms;
	uint64_t start_no;
};

/*
 * The tracker schedules the /proc scans (proc_scan) and PodList requests
 * (kubelet, podlist) on the thread pool and applies their results on the
 * loop thread: the container table and its annotation (containers, from
 * pod_table) and the kernel's PID and cgroup maps (here).
 */
struct tracker {
	struct tracker_opts o;
	struct containers *ct;
	struct pod_table *pods;
	uint32_t n_cgroups;  /* containers whose cgroup id is in the kernel's map */
	struct cgroup_v2_where v2; /* where the cgroup v2 hierarchy is; mount "" = none */
	struct pidset *tracked, *next;
	uint64_t scan_no;
	uint64_t full_logged_scan; /* scan that last logged "PID map full" */
	uv_timer_t scan_timer, kubelet_timer;
	bool scan_running, kubelet_running, closing;
	bool scan_failing;
	int open_handles;
	struct kubelet_proc *kubelet;
	double pods_time;       /* monotonic seconds of the last good PodList */
	double backoff;
	double last_unknown_refresh;
	int kubelet_state;      /* 0 unknown, 1 ok, -errno / -status for errors */
	uint64_t kubelet_starts; /* requests started */
	uint64_t applied_start;  /* the request whose PodList is in use */
	struct tracker_stats st;
};

/* A scan of 10,000 processes or a PodList of 1,000 pods allocates megabytes
 * for a moment, on the thread pool's malloc arenas and the main heap. glibc
 * keeps freed memory for reuse, so an agent idling between scans would hold
 * its peak for good (measured: 28.8 MiB of private memory with 10,000
 * tracked PIDs, target 16). Given back once the work's memory is freed, on
 * the loop thread: it walks the free lists, well under a millisecond here. */
static void give_back_memory(void)
{
#ifdef __GLIBC__
	(void)malloc_trim(0);
#endif
}

/* ---------------- scanning (thread pool) ---------------- */

static void scan_run(uv_work_t *req)
{
	struct scan_work *w = req->data;

	w->err = proc_scan__run(&w->scan, w->proc_root, &w->v2, w->self);
}

/* ---------------- kernel maps (loop thread) ---------------- */

static void start_kubelet(struct tracker *t);
static void unref(struct tracker *t);

static void unmap_cgroup(struct tracker *t, struct container *c)
{
	int r;

	if (!c->cgid)
		return;
	r = loader__unmap_cgroup(t->o.loader, c->cgid);
	if (r)
		log_warn("cannot unmap cgroup %llu: %s", (unsigned long long)c->cgid,
			 strerror(-r));
	c->cgid = 0;
	loader__set_cgroups_mapped(t->o.loader, --t->n_cgroups);
}

/* Counted every time; said at most once per 30 scans, not per process. */
static void note_map_full(struct tracker *t, uint32_t n)
{
	if (!t->full_logged_scan || t->scan_no >= t->full_logged_scan + 30) {
		log_warn("PID map full (%u entries): container processes go untracked; "
			 "raise --pid-map-size", t->o.pid_map_size);
		t->full_logged_scan = t->scan_no;
	}
	t->st.pid_map_full += n;
}

static void untrack_gone(void *ctx, uint32_t tgid, uint32_t key)
{
	struct tracker *t = ctx;
	uint32_t k2;

	(void)key;
	if (pidset__get(t->next, tgid, &k2))
		return;
	/* Exit already removed it in the kernel when it was a leader; a
	 * missing entry is fine. */
	(void)loader__untrack(t->o.loader, tgid);
}

/* Puts the container's own cgroup into the kernel's cgroup map (or moves
 * it there from an older id), so a process entering the container is
 * tracked from its first event instead of the next scan. */
static void map_cgroup(struct tracker *t, struct container *c, uint64_t cgid)
{
	int r;

	if (!cgid)
		return;
	if (c->cgid == cgid) {
		c->cgid_scan = t->scan_no;
		return;
	}
	/* Two directories naming the same container in one scan (a sub-cgroup
	 * made to look like it): the one already mapped stays. */
	if (c->cgid && c->cgid_scan == t->scan_no)
		return;
	if (c->cgid)
		unmap_cgroup(t, c);
	r = loader__map_cgroup(t->o.loader, cgid, c->key);
	if (r == -ENOSPC) {
		/* Counted; the container still has the scans. */
		if (!t->st.cgroup_map_full++)
			log_warn("cgroup map full (%u containers): processes entering further "
				 "containers are found by the next scan", KMON_CGROUP_MAP_SIZE);
		return;
	}
	if (r) {
		log_warn("cannot map cgroup %llu of container %.12s: %s",
			 (unsigned long long)cgid, c->meta.container_id, strerror(-r));
		return;
	}
	c->cgid = cgid;
	c->cgid_scan = t->scan_no;
	loader__set_cgroups_mapped(t->o.loader, ++t->n_cgroups);
}

static void scan_done(uv_work_t *req, int status)
{
	struct scan_work *w = req->data;
	const struct proc_scan *hits = &w->scan;
	struct tracker *t = w->t;
	bool unknown = false;
	size_t i;
	uint32_t k, *tgids, n_assert = 0;
	struct kmon_pid_info *infos;
	struct pidset *tmp;

	t->scan_running = false;
	if (status || t->closing || w->err) {
		if (w->err && !t->closing) {
			/* Said once until a scan works again: a wrong --proc-root
			 * (a missing hostPath mount) keeps /readyz at 503 and says why. */
			if (!t->st.scan_errors++ || !t->scan_failing)
				log_warn("scan of %s failed: %s; not ready until a scan works (check "
					 "--proc-root)", w->proc_root, strerror(-w->err));
			t->scan_failing = true;
		}
		goto out;
	}
	if (t->scan_failing)
		log_info("scan of %s works again", w->proc_root);
	t->scan_failing = false;
	t->scan_no++;
	pidset__clear(t->next);
	/* Every scan writes every container process it found into the kernel
	 * map, whether or not the last scan did: the tracker's own copy is not
	 * evidence that the entry is still there (an exit, a full map or anyone
	 * with the map's fd may have removed it). One batched syscall for the
	 * lot; without memory for the batch, one syscall per process. */
	tgids = hits->n_hits ? malloc(hits->n_hits * sizeof(*tgids)) : NULL;
	infos = hits->n_hits ? malloc(hits->n_hits * sizeof(*infos)) : NULL;
	for (i = 0; i < hits->n_hits; i++) {
		const struct proc_scan_hit *h = &hits->hits[i];
		struct container *c;
		bool is_new;
		int r;

		k = containers__add(t->ct, &h->info, t->kubelet_starts, &is_new);
		if (!k) {
			t->st.pid_map_full++;
			continue;
		}
		c = containers__get(t->ct, k);
		c->last_scan = t->scan_no;
		map_cgroup(t, c, h->cgid);
		if (is_new) {
			containers__annotate(t->ct, c, t->pods, t->applied_start);
			/* META reaches consumers before any event carries this key. */
			if (fanout__set_meta(t->o.fanout, &c->meta))
				log_warn("cannot record metadata of container %.12s",
					 c->meta.container_id);
			if (c->kind == CGROUP_CONTAINER && !c->id_known)
				unknown = true;
			log_debug("container %s %.12s pod %s key %u", c->meta.runtime,
				  c->meta.container_id, c->meta.pod_uid, k);
		}
		r = pidset__put(t->next, h->tgid, k);
		if (r) {
			if (r == -ENOMEM)
				log_error("out of memory tracking PID %u: left untracked, "
					  "counted as pid_map_full", h->tgid);
			note_map_full(t, 1);
			continue;
		}
		if (tgids && infos) {
			tgids[n_assert] = h->tgid;
			infos[n_assert].container_key = k;
			infos[n_assert].flags = KMON_PIDF_FROM_SCAN;
			n_assert++;
			continue;
		}
		r = loader__track(t->o.loader, h->tgid, k, KMON_PIDF_FROM_SCAN);
		if (r == -E2BIG || r == -ENOSPC) {
			note_map_full(t, 1);
		} else if (r) {
			log_warn("cannot track pid %u: %s", h->tgid, strerror(-r));
		}
	}
	if (n_assert) {
		uint32_t full = 0;
		int r = loader__track_many(t->o.loader, tgids, infos, n_assert, &full);

		if (full)
			note_map_full(t, full);
		if (r)
			log_warn("cannot track some container processes: %s", strerror(-r));
	}
	free(tgids);
	free(infos);
	pidset__for_each(t->tracked, untrack_gone, t);
	tmp = t->tracked;
	t->tracked = t->next;
	t->next = tmp;
	/* Containers gone for a while: forget them and free their key. */
	for (k = containers__next(t->ct, 0); k; k = containers__next(t->ct, k)) {
		struct container *c = containers__get(t->ct, k);

		if (t->scan_no - c->last_scan >= FORGET_AFTER_SCANS) {
			/* Before the key can be reused by another container. */
			unmap_cgroup(t, c);
			fanout__forget_meta(t->o.fanout, k);
			containers__remove(t->ct, k);
		}
	}
	t->st.scans++;
	t->st.tracked = pidset__count(t->tracked);
	t->st.containers = containers__count(t->ct);
	t->st.cgroups_mapped = t->n_cgroups;
	t->st.last_scan_ms = hits->ms;
	if (!t->st.first_scan_done) {
		t->st.first_scan_done = true;
		log_info("first scan of %s: %llu processes, %zu in containers, %u containers "
			 "(%.1f ms)", w->proc_root, (unsigned long long)hits->seen, hits->n_hits,
			 containers__count(t->ct), hits->ms);
	}
	if (unknown && t->kubelet && kmon_clock__sec() - t->last_unknown_refresh >= UNKNOWN_REFRESH_MIN) {
		t->last_unknown_refresh = kmon_clock__sec();
		start_kubelet(t);
	}
	if (t->o.on_update)
		t->o.on_update(t->o.ctx);
out:
	proc_scan__release(&w->scan);
	free(w);
	give_back_memory();
	unref(t);
}

static void start_scan(struct tracker *t)
{
	struct scan_work *w;

	if (t->scan_running || t->closing)
		return;
	w = calloc(1, sizeof(*w));
	if (!w)
		return;
	w->t = t;
	w->req.data = w;
	w->self = (uint32_t)getpid();
	snprintf(w->proc_root, sizeof(w->proc_root), "%s", t->o.proc_root);
	w->v2 = t->v2;
	if (uv_queue_work(t->o.loop, &w->req, scan_run, scan_done)) {
		free(w);
		return;
	}
	t->open_handles++;
	t->scan_running = true;
}

static void on_scan_timer(uv_timer_t *h)
{
	start_scan(h->data);
}

/* ---------------- kubelet (thread pool) ---------------- */

static void pods_run(uv_work_t *req)
{
	struct pods_work *w = req->data;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	w->err = kubelet_proc__get_pods(w->k, &w->body, &w->len, &w->status, w->why, sizeof(w->why));
	if (!w->err) {
		w->pl = podlist__parse(w->body, w->len, 20000, w->why, sizeof(w->why));
		if (!w->pl)
			w->err = errno ? -errno : -EINVAL;
	}
	free(w->body);
	w->body = NULL;
	clock_gettime(CLOCK_MONOTONIC, &b);
	w->ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static void on_kubelet_timer(uv_timer_t *h);

/* Parts of the PodList skipped (the rest is in use): on /metrics, and one log
 * line each time the counts change, not one per refresh. */
static void note_skips(struct tracker *t, const struct podlist *pl)
{
	const struct podlist_skips *s = &pl->skipped;
	struct tracker_stats *st = &t->st;

	if (st->podlist_skipped_items == s->items && st->podlist_skipped_instances == s->instances &&
	    st->podlist_skipped_ids == s->ids && st->podlist_skipped_fields == s->fields)
		return;
	st->podlist_skipped_items = s->items;
	st->podlist_skipped_instances = s->instances;
	st->podlist_skipped_ids = s->ids;
	st->podlist_skipped_fields = s->fields;
	if (podlist__skipped_total(pl))
		log_warn("kubelet %s: PodList parts skipped, the rest is used: %u pods, %u container "
			 "instances over the bound of %u, %u container ids not understood, %u "
			 "malformed fields; first: %s",
			 t->o.kubelet_url, s->items, s->instances, PODLIST_MAX_INSTANCES, s->ids,
			 s->fields, pl->first_skip);
	else
		log_info("kubelet %s: no PodList parts skipped any more", t->o.kubelet_url);
}

static void pods_done(uv_work_t *req, int status)
{
	struct pods_work *w = req->data;
	struct tracker *t = w->t;
	double next = t->o.kubelet_refresh;
	uint32_t k;

	t->kubelet_running = false;
	if (status || t->closing)
		goto out;
	if (w->err) {
		int state = w->status >= 400 ? -(int)w->status : w->err;
		t->st.kubelet_errors++;
		if (state != t->kubelet_state)
			log_warn("kubelet %s: %s; events keep flowing with container ids only, "
				 "retrying with backoff", t->o.kubelet_url, w->why);
		t->kubelet_state = state;
		t->backoff = t->backoff ? fmin(t->backoff * 2, BACKOFF_MAX_SEC) : 1.0;
		/* Jitter: nodes restarted together must not poll in step. */
		next = t->backoff * (0.5 + (double)rand() / RAND_MAX);
	} else {
		if (pod_table__merge(t->pods, w->pl, kmon_clock__sec())) {
			log_warn("out of memory for the pod table");
			goto resched;
		}
		t->st.kubelet_ok++;
		t->applied_start = w->start_no;
		t->st.pods = w->pl->n_pods;
		t->pods_time = kmon_clock__sec();
		t->backoff = 0;
		if (t->kubelet_state != 1)
			log_info("kubelet %s: %u pods; annotating events with pod names",
				 t->o.kubelet_url, w->pl->n_pods);
		note_skips(t, w->pl);
		t->kubelet_state = 1;
		for (k = containers__next(t->ct, 0); k; k = containers__next(t->ct, k)) {
			struct container *c = containers__get(t->ct, k);

			if (containers__annotate(t->ct, c, t->pods, t->applied_start))
				fanout__set_meta(t->o.fanout, &c->meta);
		}
		if (t->o.on_update)
			t->o.on_update(t->o.ctx);
	}
resched:
	if (!t->closing)
		uv_timer_start(&t->kubelet_timer, on_kubelet_timer, (uint64_t)(next * 1000), 0);
out:
	podlist__free(w->pl);
	free(w);
	give_back_memory();
	unref(t);
}

static void start_kubelet(struct tracker *t)
{
	struct pods_work *w;

	if (t->kubelet_running || t->closing || !t->kubelet)
		return;
	w = calloc(1, sizeof(*w));
	if (!w)
		return;
	w->t = t;
	w->k = t->kubelet;
	w->req.data = w;
	w->start_no = ++t->kubelet_starts;
	if (uv_queue_work(t->o.loop, &w->req, pods_run, pods_done)) {
		free(w);
		return;
	}
	t->open_handles++;
	uv_timer_stop(&t->kubelet_timer);
	t->kubelet_running = true;
}

static void on_kubelet_timer(uv_timer_t *h)
{
	start_kubelet(h->data);
}

/* ---------------- lifecycle ---------------- */

struct tracker *tracker__new(const struct tracker_opts *opts)
{
	struct tracker *t = calloc(1, sizeof(*t));
	int r;

	if (!t) {
		kubelet_proc__free(opts->kubelet);
		return NULL;
	}
	t->o = *opts;
	t->ct = containers__new();
	t->pods = pod_table__new(POD_GRACE_SEC);
	t->tracked = pidset__new(opts->pid_map_size);
	t->next = pidset__new(opts->pid_map_size);
	if (!t->ct || !t->pods || !t->tracked || !t->next)
		goto fail;
	/* No cgroup v2 hierarchy (a v1 node), or not all of it in view: no
	 * cgroup map, scans only. */
	r = cgroup__v2_locate("/proc/self/mountinfo", "/proc/self/cgroup", getpid(), &t->v2);
	if (r) {
		log_info("cgroup v2 hierarchy not in view (%s): processes entering a container "
			 "are found by the next scan", strerror(-r));
		t->v2.mount[0] = '\0';
	} else {
		log_info("cgroup v2 at %s (namespace root %s): processes entering a container "
			 "are tracked from their first event", t->v2.mount,
			 t->v2.ns_root[0] ? t->v2.ns_root : "/");
	}
	if (opts->kubelet) {
		t->kubelet = opts->kubelet;
		t->st.kubelet_configured = true;
	}
	uv_timer_init(opts->loop, &t->scan_timer);
	uv_timer_init(opts->loop, &t->kubelet_timer);
	t->scan_timer.data = t->kubelet_timer.data = t;
	t->open_handles = 2;
	return t;
fail:
	kubelet_proc__free(opts->kubelet);
	pidset__free(t->tracked);
	pidset__free(t->next);
	containers__free(t->ct);
	pod_table__free(t->pods);
	free(t);
	errno = ENOMEM;
	return NULL;
}

int tracker__start(struct tracker *t)
{
	uint64_t every = (uint64_t)(t->o.rescan_interval * 1000);

	start_scan(t);
	if (every)
		uv_timer_start(&t->scan_timer, on_scan_timer, every, every);
	start_kubelet(t);
	return 0;
}

void tracker__get_stats(struct tracker *t, struct tracker_stats *out)
{
	*out = t->st;
	out->identity_mismatch = containers__mismatches(t->ct);
	out->seconds_since_kubelet_ok = t->pods_time > 0 ? kmon_clock__sec() - t->pods_time : -1;
}

/* open_handles counts the two timers and work queued in the thread pool:
 * the tracker goes only when the last of them is done. */
static void unref(struct tracker *t)
{
	if (--t->open_handles)
		return;
	kubelet_proc__free(t->kubelet);
	pidset__free(t->tracked);
	pidset__free(t->next);
	pod_table__free(t->pods);
	containers__free(t->ct);
	free(t);
}

static void on_closed(uv_handle_t *h)
{
	unref(h->data);
}

void tracker__close(struct tracker *t)
{
	if (!t || t->closing)
		return;
	/* Work in the pool finishes on its own; its done callbacks see closing.
	 * They run before the loop can end, so the handles close after them. */
	t->closing = true;
	uv_close((uv_handle_t *)&t->scan_timer, on_closed);
	uv_close((uv_handle_t *)&t->kubelet_timer, on_closed);
}
