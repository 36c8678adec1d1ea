// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A complete kmon consumer: print every exec with its pod, and say what was
 * lost. Build:  cc kmon-execs.c $(pkg-config --cflags --libs kmon)
 * Run:          ./kmon-execs [/run/kmon/kmon.sock [max-events]]           */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <kmon/kmon.h>

int main(int argc, char **argv)
{
	struct kmon_client_opts o = { .sz = sizeof(o), .name = "kmon-execs", .reconnect = true,
				      .event_mask = KMON_EV_MASK(KMON_EV_PROCESS_EXEC) };
	long max = argc > 2 ? atol(argv[2]) : -1, seen = 0;
	struct kmon_read_rec recs[256];
	struct kmon_reader *r;
	int n, i;

	o.socket_path = argc > 1 ? argv[1] : "/run/kmon/kmon.sock";
	if (!(r = kmon_reader__new(&o)))
		return fprintf(stderr, "kmon-execs: %s\n", strerror(errno)), 1;
	while (max < 0 || seen < max) {
		if ((n = kmon_reader__read(r, recs, 256, 1000)) < 0)
			break; /* the agent refused us: kmon_reader__why() says why */
		for (i = 0; i < n; i++) {
			const struct kmon_event *ev = (const void *)recs[i].ev;
			const struct kmon_meta *m = recs[i].meta;
			if (recs[i].kind == KMON_READ_LOST) {
				printf("lost %llu events\n", (unsigned long long)recs[i].count);
				continue;
			}
			printf("%s/%s %s pid %u exec %.64s\n", m ? m->namespace : "-",
			       m ? m->pod : "-", m ? m->container : "-", ev->pid,
			       ev->data.filename);
			seen++;
		}
		fflush(stdout);
	}
	fprintf(stderr, "kmon-execs: %s\n", kmon_reader__why(r));
	kmon_reader__free(r);
	return n < 0 ? 1 : 0;
}
