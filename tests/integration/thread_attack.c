// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A process that tries to drop out of kmon's PID map by the two ways a
 * thread group can lose its leader while living on (issue 13, defect 2):
 *
 *   thread_attack leader-exit BEFORE AFTER SECONDS
 *     a worker thread execs BEFORE every 100 ms (and allocates kernel
 *     memory: eventfd + close); on a line on stdin main() calls
 *     pthread_exit() and the worker switches to AFTER for SECONDS.
 *   thread_attack thread-exec BEFORE AFTER SECONDS
 *     the same worker; on a line on stdin a second thread calls execve() of
 *     this program ("worker" mode, AFTER for SECONDS): the kernel kills the
 *     old leader, and the exec'ing thread takes over its pid.
 *   thread_attack worker AFTER SECONDS     (what thread-exec execs into)
 *
 * "Execs X" means fork, the child execs X (a symlink to /bin/true the test
 * made, so its name is unique), the parent reaps it.
 * Prints "ready <tgid>" once its threads run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *before, *after;
static double seconds;
static atomic_int attacked;
static char self_path[4096];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const char *path)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	/* A kmalloc and a kfree in the kernel, charged to this process. */
	fd = eventfd(0, EFD_CLOEXEC);
	if (fd >= 0)
		close(fd);
}

static void pause_100ms(void)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Execs `after` for `seconds`, then ends the whole process. */
static void after_phase(void)
{
	double end = now() + seconds;

	while (now() < end) {
		run(after);
		pause_100ms();
	}
	exit(0);
}

static void *worker(void *arg)
{
	(void)arg;
	while (!atomic_load(&attacked)) {
		run(before);
		pause_100ms();
	}
	after_phase();
	return NULL;
}

static void wait_line(void)
{
	char line[64];

	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "thread_attack: stdin closed before the go line\n");
		exit(1);
	}
}

static void *execer(void *arg)
{
	char secs[32];

	(void)arg;
	wait_line();
	snprintf(secs, sizeof(secs), "%g", seconds);
	execl(self_path, self_path, "worker", after, secs, (char *)NULL);
	perror("execl");
	exit(1);
}

int main(int argc, char **argv)
{
	pthread_t w, x;
	ssize_t n;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "worker")) {
		after = argv[2];
		seconds = atof(argv[3]);
		printf("exec'd %d\n", (int)getpid());
		after_phase();
	}
	if (argc != 5 || (strcmp(argv[1], "leader-exit") && strcmp(argv[1], "thread-exec"))) {
		fprintf(stderr, "usage: thread_attack leader-exit|thread-exec BEFORE AFTER SECONDS\n"
				"       thread_attack worker AFTER SECONDS\n");
		return 2;
	}
	before = argv[2];
	after = argv[3];
	seconds = atof(argv[4]);
	n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n < 0) {
		perror("readlink /proc/self/exe");
		return 1;
	}
	self_path[n] = '\0';
	r = pthread_create(&w, NULL, worker, NULL);
	if (r) {
		fprintf(stderr, "pthread_create: %s\n", strerror(r));
		return 1;
	}
	if (!strcmp(argv[1], "thread-exec")) {
		r = pthread_create(&x, NULL, execer, NULL);
		if (r) {
			fprintf(stderr, "pthread_create: %s\n", strerror(r));
			return 1;
		}
		printf("ready %d\n", (int)getpid());
		for (;;)
			pause();
	}
	printf("ready %d\n", (int)getpid());
	wait_line();
	atomic_store(&attacked, 1);
	/* The leader goes; the worker thread keeps the process alive. */
	pthread_exit(NULL);
}
