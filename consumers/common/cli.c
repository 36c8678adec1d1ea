// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "consumers/common/cli.h"
#include "shm/common/log.h"
#include "shm/proto.h"

/* Codes of the shared options: above any a program gives its own. */
enum { CLI_SOCKET = 4096, CLI_NAME, CLI_SCHED, CLI_HELP };

/* Long options of one program at the most, shared ones included. */
#define CLI_OPTIONS_MAX 64

static int shared_option(struct consumer_cli *cli, int code, const char *arg)
{
	switch (code) {
	case CLI_SOCKET:
		if (!*arg || strlen(arg) >= KMON_PROTO_PATH_MAX)
			return log_fail("--socket: path must be 1 to %d bytes long",
					KMON_PROTO_PATH_MAX - 1);
		cli->socket_path = arg;
		return 0;
	case CLI_NAME:
		if (!*arg || strlen(arg) >= KMON_PROTO_NAME_MAX || strpbrk(arg, " \t\n"))
			return log_fail("--name: must be 1 to %d characters without spaces",
					KMON_PROTO_NAME_MAX - 1);
		cli->name = arg;
		return 0;
	case CLI_SCHED:
		if (strcmp(arg, "batch") && strcmp(arg, "normal"))
			return log_fail("--sched: '%s' is not batch or normal", arg);
		cli->sched_normal = !strcmp(arg, "normal");
		return 0;
	default: /* CLI_HELP */
		cli->help = true;
		return 0;
	}
}

int consumer_cli__parse(struct consumer_cli *cli, unsigned which, const char *prog,
			const struct option *own, consumer_cli_fn fn, void *ctx, int argc,
			char **argv)
{
	static const struct option shared[] = {
		{ "socket", required_argument, NULL, CLI_SOCKET },
		{ "name", required_argument, NULL, CLI_NAME },
		{ "sched", required_argument, NULL, CLI_SCHED },
		{ "help", no_argument, NULL, CLI_HELP },
	};
	struct option lo[CLI_OPTIONS_MAX + 1];
	unsigned n = 0, i;
	int c;

	memset(cli, 0, sizeof(*cli));
	cli->socket_path = "/run/kmon/kmon.sock";
	cli->name = prog;
	for (i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		if (shared[i].val == CLI_HELP || (which & (1u << i)))
			lo[n++] = shared[i];
	for (; own && own->name; own++) {
		if (n == CLI_OPTIONS_MAX)
			return log_fail("internal: more than %d options", CLI_OPTIONS_MAX);
		lo[n++] = *own;
	}
	memset(&lo[n], 0, sizeof(lo[n]));
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == '?' || c == ':')
			return log_fail("unknown or incomplete option '%s' (see --help)",
					argv[optind - 1]);
		if (c >= CLI_SOCKET ? shared_option(cli, c, optarg) : fn(ctx, c, optarg))
			return -1;
		if (cli->help)
			return 0;
	}
	if (optind < argc)
		return log_fail("unexpected argument '%s'", argv[optind]);
	return 0;
}

void consumer_cli__apply_sched(const struct consumer_cli *cli, const char *prog)
{
	int err;

	if (!cli->sched_normal && (err = kmon_client__sched_batch()))
		fprintf(stderr, "%s: cannot use SCHED_BATCH (%s); staying SCHED_OTHER\n", prog,
			strerror(-err));
}

void consumer_cli__client_opts(const struct consumer_cli *cli, struct kmon_client_opts *co)
{
	memset(co, 0, sizeof(*co));
	co->sz = sizeof(*co);
	co->socket_path = cli->socket_path;
	co->name = cli->name;
}
