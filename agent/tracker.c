// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/tracker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/types.h>
#include "agent/fanout.h"
#include "agent/loader.h"
#include "shm/common/log.h"
#include "agent/pidset.h"
#include "bpf/kmon_event.h"
#include "k8s/cgroup.h"
#include "k8s/cgroup_v2.h"
#include "k8s/kubelet.h"
#include "k8s/podlist.h"
#include "shm/common/clock.h"
#include "shm/meta.h"

#define CGROUP_FILE_MAX (64 * 1024)
#define FORGET_AFTER_SCANS 5    /* a container unseen this many scans is forgotten */
#define POD_GRACE_SEC 60.0      /* pods missing from the PodList stay known this long */
#define UNKNOWN_REFRESH_MIN 2.0 /* at most one "new container" refresh per 2 s */
#define BACKOFF_MAX_SEC 60.0
#define CGID_PATH_MAX 1024

/* One container (or pod-level cgroup) the agent has seen in a scan. */
struct container {
	bool used;
	uint32_t key;
	enum cgroup_kind kind;
	struct kmon_meta meta;
	uint64_t last_scan; /* scan number it was last seen in */
	bool pod_known;     /* pod/namespace filled from the kubelet */
	bool id_known;      /* its id is in the PodList */
	uint64_t seen_at;   /* kubelet requests started before it was first seen */
	bool mismatch_said; /* its identity mismatch was counted and logged */
	uint64_t cgid;      /* its own cgroup v2 id, in the kernel's cgroup map; 0: none */
	uint64_t cgid_scan; /* scan that last saw a process in that cgroup */
};

struct scan_hit {
	uint32_t tgid;
	struct cgroup_info info;
	uint64_t cgid; /* the container's own cgroup v2 id, when the process is in it */
};

struct scan_work {
	uv_work_t req;
	struct tracker *t;
	char proc_root[256];
	struct cgroup_v2_where v2; /* v2.mount "" = no cgroup v2 hierarchy: no cgroup ids */
	uint32_t self;
	struct scan_hit *hits;
	size_t n_hits, cap_hits;
	uint64_t seen, vanished, unreadable;
	double ms;
	int err;
};

/* One pod container from the PodList, flattened. */
struct pod_entry {
	double last_seen; /* monotonic seconds */
	char id[72];
	char pod[254], ns[254], container[254], uid[40];
	char runtime[16]; /* from the containerID scheme */
};

struct pods_work {
	uv_work_t req;
	struct tracker *t;
	struct kubelet *k;
	char *body;
	size_t len;
	long status;
	int err;
	char why[512];
	struct podlist *pl;
	double ms;
	uint64_t start_no;
};

struct tracker {
	struct tracker_opts o;
	struct container *c; /* indexed by key; [0] unused; calloc'd, so only
			      * the pages of keys in use become resident */
	uint32_t hi;         /* keys in use are below this */
	uint32_t last_key;   /* the last container found: scans hit runs of one */
	uint32_t n_containers;
	uint32_t n_cgroups;  /* containers whose cgroup id is in the kernel's map */
	struct cgroup_v2_where v2; /* where the cgroup v2 hierarchy is; mount "" = none */
	struct pidset *tracked, *next;
	uint64_t scan_no;
	uint64_t full_logged_scan; /* scan that last logged "PID map full" */
	uv_timer_t scan_timer, kubelet_timer;
	bool scan_running, kubelet_running, closing;
	bool scan_failing;
	int open_handles;
	struct kubelet *kubelet;
	/* Pod table from the last good PodList. */
	struct pod_entry *pods;
	size_t n_pods;
	double pods_time;       /* monotonic seconds of the last good PodList */
	double backoff;
	double last_unknown_refresh;
	int kubelet_state;      /* 0 unknown, 1 ok, -errno / -status for errors */
	uint64_t kubelet_starts; /* requests started */
	uint64_t applied_start;  /* the request whose PodList is in use */
	struct tracker_stats st;
};

/* ---------------- scanning (thread pool) ---------------- */

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
static uint64_t own_cgroup_id(struct scan_work *w, const char *text, size_t len,
			      const struct cgroup_info *info, struct cgid_cache *cache)
{
	char rel[CGID_PATH_MAX], abs[CGID_PATH_MAX], full[CGID_PATH_MAX + 256];
	struct stat st;

	if (!w->v2.mount[0] || info->kind != CGROUP_CONTAINER || !info->container_id[0])
		return 0;
	if (cgroup__own_v2_path(text, len, info->container_id, rel, sizeof(rel)))
		return 0;
	if (cache->id && !strcmp(cache->path, rel))
		return cache->id;
	if (cgroup__v2_resolve(w->v2.ns_root, rel, abs, sizeof(abs)))
		return 0;
	snprintf(full, sizeof(full), "%s%s", w->v2.mount, abs);
	if (stat(full, &st) || !S_ISDIR(st.st_mode))
		return 0; /* gone meanwhile, or another cgroup namespace's view */
	snprintf(cache->path, sizeof(cache->path), "%s", rel);
	cache->id = (uint64_t)st.st_ino;
	return cache->id;
}

static void scan_run(uv_work_t *req)
{
	struct scan_work *w = req->data;
	struct timespec a, b;
	struct dirent *de;
	struct cgid_cache cache = { .id = 0 };
	char *buf, path[64];
	DIR *d;
	int dfd;

	clock_gettime(CLOCK_MONOTONIC, &a);
	buf = malloc(CGROUP_FILE_MAX);
	d = opendir(w->proc_root);
	if (!buf || !d) {
		w->err = -errno;
		free(buf);
		if (d)
			closedir(d);
		return;
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
		w->seen++;
		if (pid == w->self)
			continue;
		snprintf(path, sizeof(path), "%lu/cgroup", pid);
		r = read_small(dfd, path, buf, CGROUP_FILE_MAX, &len);
		if (r) {
			/* Gone between readdir and open: normal on a busy node. */
			if (r == -ENOENT || r == -ESRCH)
				w->vanished++;
			else
				w->unreadable++;
			continue;
		}
		if (!len) {
			w->vanished++; /* zombie or exiting */
			continue;
		}
		if (cgroup__classify(buf, len, &info) || info.kind == CGROUP_HOST ||
		    info.kind == CGROUP_CONMON)
			continue;
		if (w->n_hits == w->cap_hits) {
			size_t nc = w->cap_hits ? w->cap_hits * 2 : 256;
			struct scan_hit *h = realloc(w->hits, nc * sizeof(*h));
			if (!h) {
				w->err = -ENOMEM;
				break;
			}
			w->hits = h;
			w->cap_hits = nc;
		}
		w->hits[w->n_hits].tgid = (uint32_t)pid;
		w->hits[w->n_hits].info = info;
		w->hits[w->n_hits].cgid = own_cgroup_id(w, buf, len, &info, &cache);
		w->n_hits++;
	}
	closedir(d);
	free(buf);
	clock_gettime(CLOCK_MONOTONIC, &b);
	w->ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

/* ---------------- container table (loop thread) ---------------- */

static const struct pod_entry *pod_by_container(const struct tracker *t, const char *id)
{
	size_t i;

	for (i = 0; i < t->n_pods; i++)
		if (!strcmp(t->pods[i].id, id))
			return &t->pods[i];
	return NULL;
}

static const struct pod_entry *pod_by_uid(const struct tracker *t, const char *uid)
{
	size_t i;

	for (i = 0; i < t->n_pods; i++)
		if (!strcmp(t->pods[i].uid, uid))
			return &t->pods[i];
	return NULL;
}

/* Fills pod, namespace and container names from the pod table. Returns
 * true when the meta changed.
 *
 * A container id alone proves nothing: whoever can create a cgroup can name
 * it after another pod's container. The kubelet-made pod directory of the
 * same path must agree with the pod the PodList puts that id in; when it
 * does not (or the path has no pod directory at all), the container is left
 * without pod names, counted and logged once. */
static bool annotate(struct tracker *t, struct container *c)
{
	struct kmon_meta m = c->meta;
	const struct pod_entry *p = NULL;

	if (c->kind == CGROUP_CONTAINER && m.container_id[0])
		p = pod_by_container(t, m.container_id);
	if (p && strcmp(p->uid, m.pod_uid)) {
		if (!c->mismatch_said) {
			c->mismatch_said = true;
			t->st.identity_mismatch++;
			log_warn("container %.12s claims pod %s/%s (uid %s) but its cgroup is in "
				 "%s%s: not annotated (a cgroup named after another pod's container)",
				 m.container_id, p->ns, p->pod, p->uid,
				 m.pod_uid[0] ? "pod " : "no pod directory", m.pod_uid);
		}
		m.pod[0] = m.namespace[0] = m.container[0] = '\0';
		c->id_known = false;
		c->pod_known = false;
		if (!memcmp(&m, &c->meta, sizeof(m)))
			return false;
		c->meta = m;
		return true;
	}
	if (!p && m.pod_uid[0])
		p = pod_by_uid(t, m.pod_uid);
	if (p) {
		snprintf(m.pod, sizeof(m.pod), "%s", p->pod);
		snprintf(m.namespace, sizeof(m.namespace), "%s", p->ns);
		c->id_known = c->kind == CGROUP_CONTAINER && m.container_id[0] &&
			      !strcmp(p->id, m.container_id);
		if (c->id_known)
			snprintf(m.container, sizeof(m.container), "%s", p->container);
		/* A bare id under a pod cgroup is containerd's or docker's
		 * (dockershim, cri-dockerd), and the classifier says containerd:
		 * the kubelet's containerID scheme settles it. A runtime the path
		 * names itself (docker-, crio-, libpod-) stays. */
		if (c->id_known && p->runtime[0] && !strcmp(m.runtime, "containerd"))
			snprintf(m.runtime, sizeof(m.runtime), "%s", p->runtime);
		/* Pod known, id absent from a PodList fetched after we first saw
		 * it: the pod's sandbox (pause), which the kubelet never lists. */
		if (c->kind == CGROUP_CONTAINER && !c->id_known && t->applied_start > c->seen_at)
			c->kind = CGROUP_SANDBOX;
		c->pod_known = true;
	}
	if (!memcmp(&m, &c->meta, sizeof(m)))
		return false;
	c->meta = m;
	return true;
}

static bool same_container(const struct container *c, const struct cgroup_info *info)
{
	if (!c->used)
		return false;
	/* The pod uid too: a cgroup named after another pod's container must
	 * not share that container's key (and so its annotation). */
	return !strcmp(c->meta.container_id, info->container_id) &&
	       !strcmp(c->meta.pod_uid, info->pod_uid);
}

static uint32_t find_container(struct tracker *t, const struct cgroup_info *info)
{
	uint32_t k;

	if (t->last_key && same_container(&t->c[t->last_key], info))
		return t->last_key;
	for (k = 1; k < t->hi; k++) {
		if (same_container(&t->c[k], info)) {
			t->last_key = k;
			return k;
		}
	}
	return 0;
}

static uint32_t add_container(struct tracker *t, const struct cgroup_info *info, bool *is_new)
{
	uint32_t k = find_container(t, info);
	struct container *c;

	*is_new = false;
	if (k)
		return k;
	for (k = 1; k < FANOUT_MAX_KEYS; k++)
		if (!t->c[k].used)
			break;
	if (k == FANOUT_MAX_KEYS)
		return 0;
	if (k >= t->hi)
		t->hi = k + 1;
	c = &t->c[k];
	memset(c, 0, sizeof(*c));
	c->used = true;
	c->key = k;
	c->kind = info->kind;
	c->meta.key = k;
	snprintf(c->meta.runtime, sizeof(c->meta.runtime), "%s", info->runtime);
	snprintf(c->meta.container_id, sizeof(c->meta.container_id), "%s", info->container_id);
	snprintf(c->meta.pod_uid, sizeof(c->meta.pod_uid), "%s", info->pod_uid);
	c->seen_at = t->kubelet_starts;
	t->n_containers++;
	*is_new = true;
	return k;
}

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
	tgids = w->n_hits ? malloc(w->n_hits * sizeof(*tgids)) : NULL;
	infos = w->n_hits ? malloc(w->n_hits * sizeof(*infos)) : NULL;
	for (i = 0; i < w->n_hits; i++) {
		const struct scan_hit *h = &w->hits[i];
		bool is_new;
		int r;

		k = add_container(t, &h->info, &is_new);
		if (!k) {
			t->st.pid_map_full++;
			continue;
		}
		t->c[k].last_scan = t->scan_no;
		map_cgroup(t, &t->c[k], h->cgid);
		if (is_new) {
			annotate(t, &t->c[k]);
			/* META reaches consumers before any event carries this key. */
			if (fanout__set_meta(t->o.fanout, &t->c[k].meta))
				log_warn("cannot record metadata of container %.12s",
					 t->c[k].meta.container_id);
			if (t->c[k].kind == CGROUP_CONTAINER && !t->c[k].id_known)
				unknown = true;
			log_debug("container %s %.12s pod %s key %u", t->c[k].meta.runtime,
				  t->c[k].meta.container_id, t->c[k].meta.pod_uid, k);
		}
		if (pidset__put(t->next, h->tgid, k)) {
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
	for (k = 1; k < t->hi; k++) {
		struct container *c = &t->c[k];
		if (c->used && t->scan_no - c->last_scan >= FORGET_AFTER_SCANS) {
			/* Before the key can be reused by another container. */
			unmap_cgroup(t, c);
			fanout__forget_meta(t->o.fanout, k);
			c->used = false;
			t->n_containers--;
		}
	}
	t->st.scans++;
	t->st.tracked = pidset__count(t->tracked);
	t->st.containers = t->n_containers;
	t->st.cgroups_mapped = t->n_cgroups;
	t->st.last_scan_ms = w->ms;
	if (!t->st.first_scan_done) {
		t->st.first_scan_done = true;
		log_info("first scan of %s: %llu processes, %zu in containers, %u containers "
			 "(%.1f ms)", w->proc_root, (unsigned long long)w->seen, w->n_hits,
			 t->n_containers, w->ms);
	}
	if (unknown && t->kubelet && kmon_clock__sec() - t->last_unknown_refresh >= UNKNOWN_REFRESH_MIN) {
		t->last_unknown_refresh = kmon_clock__sec();
		start_kubelet(t);
	}
	if (t->o.on_update)
		t->o.on_update(t->o.ctx);
out:
	free(w->hits);
	free(w);
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
	w->err = kubelet__get_pods(w->k, &w->body, &w->len, &w->status, w->why, sizeof(w->why));
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

/* The new pod table: everything in the PodList, plus entries of pods that
 * left it less than POD_GRACE_SEC ago (events of a terminating pod's last
 * processes still get names). */
static int flatten(struct tracker *t, const struct podlist *pl)
{
	size_t n = 0, i, j;
	struct pod_entry *e;
	double now = kmon_clock__sec();

	for (i = 0; i < pl->n_pods; i++)
		n += pl->pods[i].n_containers + 1; /* +1: pod-level entry (no id) */
	e = calloc(n + t->n_pods + 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	n = 0;
	for (i = 0; i < pl->n_pods; i++) {
		const struct podlist_pod *p = &pl->pods[i];
		for (j = 0; j <= p->n_containers; j++) {
			struct pod_entry *x = &e[n++];
			x->last_seen = now;
			snprintf(x->pod, sizeof(x->pod), "%s", p->name);
			snprintf(x->ns, sizeof(x->ns), "%s", p->namespace);
			snprintf(x->uid, sizeof(x->uid), "%s", p->uid);
			if (j < p->n_containers) {
				snprintf(x->id, sizeof(x->id), "%s", p->containers[j].id);
				snprintf(x->container, sizeof(x->container), "%s",
					 p->containers[j].name);
				snprintf(x->runtime, sizeof(x->runtime), "%s",
					 p->containers[j].runtime);
			}
		}
	}
	for (i = 0; i < t->n_pods; i++) {
		const struct pod_entry *o = &t->pods[i];
		bool present = false;
		if (now - o->last_seen >= POD_GRACE_SEC)
			continue;
		for (j = 0; j < pl->n_pods && !present; j++)
			present = !strcmp(pl->pods[j].uid, o->uid);
		if (!present)
			e[n++] = *o;
	}
	free(t->pods);
	t->pods = e;
	t->n_pods = n;
	return 0;
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
		if (flatten(t, w->pl)) {
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
		for (k = 1; k < t->hi; k++) {
			struct container *c = &t->c[k];
			if (c->used && annotate(t, c))
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

	if (!t)
		return NULL;
	t->o = *opts;
	t->c = calloc(FANOUT_MAX_KEYS, sizeof(*t->c));
	t->tracked = pidset__new(opts->pid_map_size);
	t->next = pidset__new(opts->pid_map_size);
	if (!t->c || !t->tracked || !t->next)
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
	if (opts->kubelet_url) {
		struct kubelet_opts ko = {
			.sz = sizeof(ko),
			.url = opts->kubelet_url,
			.token_file = opts->kubelet_token_file,
			.ca_file = opts->kubelet_ca_file,
			.insecure = opts->kubelet_insecure,
			.timeout_ms = 10000,
			/* Generous for 1000 pods; a larger answer is refused before it is
			 * parsed, so a broken or hostile kubelet cannot balloon the agent. */
			.max_body = 16u << 20,
		};
		t->kubelet = kubelet__new(&ko);
		if (!t->kubelet)
			goto fail;
		t->st.kubelet_configured = true;
	}
	uv_timer_init(opts->loop, &t->scan_timer);
	uv_timer_init(opts->loop, &t->kubelet_timer);
	t->scan_timer.data = t->kubelet_timer.data = t;
	t->open_handles = 2;
	return t;
fail:
	pidset__free(t->tracked);
	pidset__free(t->next);
	free(t->c);
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
	out->seconds_since_kubelet_ok = t->pods_time > 0 ? kmon_clock__sec() - t->pods_time : -1;
}

/* open_handles counts the two timers and work queued in the thread pool:
 * the tracker goes only when the last of them is done. */
static void unref(struct tracker *t)
{
	if (--t->open_handles)
		return;
	kubelet__free(t->kubelet);
	pidset__free(t->tracked);
	pidset__free(t->next);
	free(t->pods);
	free(t->c);
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
