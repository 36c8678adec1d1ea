/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The command line every kmon consumer program shares: the options they all
 * take the same way (--socket, --name, --sched, --help), the getopt loop
 * around a program's own options, and what follows from them (the CPU
 * policy, the client's options). One place, so that kmon-forward,
 * kmon-aggregate and kmon-top check a socket path or a name alike and say
 * the same thing when it is wrong. Program-side code: it reports through
 * log_fail (shm/common/log.h) and never exits.
 */
#ifndef KMON_CONSUMER_CLI_H
#define KMON_CONSUMER_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "consumers/lib/client.h"

/* Which of the shared options a program takes (--help always). */
#define CONSUMER_CLI_SOCKET (1u << 0)
#define CONSUMER_CLI_NAME (1u << 1)
#define CONSUMER_CLI_SCHED (1u << 2)

struct consumer_cli {
	const char *socket_path; /* --socket; default /run/kmon/kmon.sock */
	const char *name;	 /* --name; default the program's name */
	bool sched_normal;	 /* --sched normal; SCHED_BATCH by default */
	bool help;		 /* --help: the program prints its usage, exits 0 */
};

/*
 * A program's own option: `code` as its struct option names it (256 to
 * 4095), arg its argument or NULL. Returns 0, or -1 once it has said what is
 * wrong (log_fail).
 */
typedef int (*consumer_cli_fn)(void *ctx, int code, const char *arg);

/*
 * Parses argv: the shared options in `which` into *cli (defaults first,
 * `prog` as the default name), every option of `own` (ended by a zeroed
 * entry) through fn. Unknown or incomplete options and stray arguments are
 * errors. Returns 0, or -1 after log_fail.
 */
int consumer_cli__parse(struct consumer_cli *cli, unsigned which, const char *prog,
			const struct option *own, consumer_cli_fn fn, void *ctx, int argc,
			char **argv);

/* SCHED_BATCH unless --sched normal; a failure is a warning on stderr, the
 * program goes on under SCHED_OTHER. */
void consumer_cli__apply_sched(const struct consumer_cli *cli, const char *prog);

/* Zeroes *co and fills what the command line decides: size, socket, name. */
void consumer_cli__client_opts(const struct consumer_cli *cli, struct kmon_client_opts *co);

#endif
