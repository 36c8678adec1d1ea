// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/kubelet_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "k8s/kubelet_reply.h"
#include "shm/err.h"

/* What the child gets beyond the request's own timeout: exec, the dynamic
 * loader and the TLS setup. */
#define SPAWN_MARGIN_MS 5000

/* How long a child that has replied gets to exit by itself. */
#define EXIT_GRACE_MS 2000

#define MAX_ARGS 16

struct kubelet_proc {
	int exe; /* O_PATH, close-on-exec, above 2 */
	char *helper, *url, *token_file, *ca_file;
	long timeout_ms;
	size_t max_body;
	char timeout_arg[24], max_body_arg[24];
	char *argv[MAX_ARGS];
};

/* A descriptor the child's dup2 onto 0-2 cannot overwrite before use. */
static int above_stdio(int fd)
{
	int n;

	if (fd < 0 || fd > 2)
		return fd;
	n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return n;
}

struct kubelet_proc *kubelet_proc__new(const struct kubelet_proc_opts *o, char *err,
				       size_t errlen)
{
	struct kubelet_proc *kp;
	struct stat st;
	int n = 0;

	if (!o || o->sz < sizeof(*o) || !o->helper || !o->url) {
		kmon_err__set(err, errlen, 0, "kubelet helper: no helper or url given");
		return NULL;
	}
	kp = calloc(1, sizeof(*kp));
	if (!kp) {
		kmon_err__set(err, errlen, 0, "kubelet helper: out of memory");
		return NULL;
	}
	kp->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
	kp->max_body = o->max_body ? o->max_body : (size_t)16 << 20;
	kp->exe = above_stdio(open(o->helper, O_PATH | O_CLOEXEC));
	if (kp->exe < 0) {
		kmon_err__set(err, errlen, 0, "--kubelet-helper %s: %s; kmon-kubelet-get is "
			      "installed next to kmon-agent", o->helper, strerror(errno));
		goto fail;
	}
	if (fstat(kp->exe, &st) || !S_ISREG(st.st_mode) || !(st.st_mode & S_IXOTH)) {
		kmon_err__set(err, errlen, 0, "--kubelet-helper %s: not a regular file every user "
			      "may run (the agent runs it after giving up root)", o->helper);
		goto fail;
	}
	snprintf(kp->timeout_arg, sizeof(kp->timeout_arg), "%ld", kp->timeout_ms);
	snprintf(kp->max_body_arg, sizeof(kp->max_body_arg), "%zu", kp->max_body);
	kp->helper = strdup(o->helper);
	kp->url = strdup(o->url);
	kp->token_file = o->token_file ? strdup(o->token_file) : NULL;
	kp->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	if (!kp->helper || !kp->url || (o->token_file && !kp->token_file) ||
	    (o->ca_file && !kp->ca_file)) {
		kmon_err__set(err, errlen, 0, "kubelet helper: out of memory");
		goto fail;
	}
	kp->argv[n++] = "kmon-kubelet-get";
	kp->argv[n++] = "--url";
	kp->argv[n++] = kp->url;
	if (kp->token_file) {
		kp->argv[n++] = "--token-file";
		kp->argv[n++] = kp->token_file;
	}
	if (kp->ca_file) {
		kp->argv[n++] = "--ca-file";
		kp->argv[n++] = kp->ca_file;
	}
	if (o->insecure)
		kp->argv[n++] = "--insecure";
	kp->argv[n++] = "--timeout-ms";
	kp->argv[n++] = kp->timeout_arg;
	kp->argv[n++] = "--max-body";
	kp->argv[n++] = kp->max_body_arg;
	kp->argv[n] = NULL;
	return kp;
fail:
	kubelet_proc__free(kp);
	return NULL;
}

void kubelet_proc__free(struct kubelet_proc *kp)
{
	if (!kp)
		return;
	if (kp->exe >= 0)
		close(kp->exe);
	free(kp->helper);
	free(kp->url);
	free(kp->token_file);
	free(kp->ca_file);
	free(kp);
}

/* In the child, between fork and exec: system calls only. */
static void child(const struct kubelet_proc *kp, int out, int null)
{
	static char *const envp[] = { NULL };
	sigset_t none;

	sigemptyset(&none);
	/* stderr stays the agent's: what the helper cannot put in its reply
	 * (and a sanitizer's report) lands in the agent's log. */
	if (sigprocmask(SIG_SETMASK, &none, NULL) || dup2(null, 0) < 0 || dup2(out, 1) < 0)
		_exit(126);
	/* Nothing of the agent's but the pipe: its descriptors are opened
	 * close-on-exec, and this makes sure of it. The helper's own file stays
	 * open across exec: a script (a wrapper someone installed) is run by
	 * its interpreter through /dev/fd/N. */
	if ((kp->exe > 3 && syscall(SYS_close_range, 3u, (unsigned)kp->exe - 1, 0u)) ||
	    syscall(SYS_close_range, (unsigned)kp->exe + 1, ~0u, 0u) ||
	    fcntl(kp->exe, F_SETFD, 0))
		_exit(126);
	syscall(SYS_execveat, kp->exe, "", kp->argv, envp, AT_EMPTY_PATH);
	_exit(127);
}

/* Until the other end of the pipe is closed or ms have passed; what still
 * comes is not read as anything. */
static void wait_for_end(int fd, int ms)
{
	struct timespec a, b;
	char sink[4096];

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int left;

		clock_gettime(CLOCK_MONOTONIC, &b);
		left = ms - (int)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			return;
		if (read(fd, sink, sizeof(sink)) <= 0)
			return; /* the end (or an error: nothing more to learn) */
	}
}

/* Why a child that sent no usable reply failed, when its end says more. */
static void explain(const struct kubelet_proc *kp, int wst, char *err, size_t errlen)
{
	if (WIFSIGNALED(wst) && WTERMSIG(wst) != SIGKILL)
		kmon_err__set(err, errlen, 0, "kubelet helper %s: killed by signal %d (%s)",
			      kp->helper, WTERMSIG(wst), strsignal(WTERMSIG(wst)));
	else if (WIFEXITED(wst) && WEXITSTATUS(wst) == 127)
		kmon_err__set(err, errlen, 0, "kubelet helper %s: cannot be run by the agent's "
			      "user (exec failed)", kp->helper);
	else if (WIFEXITED(wst) && WEXITSTATUS(wst) == 126)
		kmon_err__set(err, errlen, 0, "kubelet helper %s: cannot set up its descriptors",
			      kp->helper);
}

int kubelet_proc__get_pods(struct kubelet_proc *kp, char **body, size_t *len, long *status,
			   char *err, size_t errlen)
{
	int p[2], null, rc, wst = 0;
	pid_t pid;

	*body = NULL;
	*len = 0;
	*status = 0;
	if (pipe2(p, O_CLOEXEC))
		return kmon_err__set(err, errlen, -errno, "kubelet helper: pipe: %s",
				     strerror(errno));
	p[0] = above_stdio(p[0]);
	p[1] = above_stdio(p[1]);
	null = above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (p[0] < 0 || p[1] < 0 || null < 0) {
		rc = kmon_err__set(err, errlen, -EMFILE, "kubelet helper: no descriptors left");
		goto close_all;
	}
	pid = fork();
	if (pid < 0) {
		rc = kmon_err__set(err, errlen, -errno, "kubelet helper: fork: %s",
				   strerror(errno));
		goto close_all;
	}
	if (!pid)
		child(kp, p[1], null);
	close(p[1]);
	close(null);
	rc = kubelet_reply__read(p[0], (int)(kp->timeout_ms + SPAWN_MARGIN_MS), kp->max_body,
				 body, len, status, err, errlen);
	/* Its answer is in (or it failed to give one): it has no more to do
	 * than exit, which closes the pipe. A moment for that (its cleanup, and
	 * under a sanitizer its leak check), then a child that lingers must not
	 * hold this worker. */
	wait_for_end(p[0], EXIT_GRACE_MS);
	close(p[0]);
	kill(pid, SIGKILL);
	while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
		;
	if (rc)
		explain(kp, wst, err, errlen);
	return rc;
close_all:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (null >= 0)
		close(null);
	return rc;
}
