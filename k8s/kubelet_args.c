// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "k8s/kubelet_args.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

#include "shm/err.h"

static int number(const char *opt, const char *arg, unsigned long long max,
		  unsigned long long *out, char *err, size_t errlen)
{
	char *end;

	errno = 0;
	*out = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || *out > max)
		return kmon_err__set(err, errlen, -EINVAL, "%s: '%s' is not a number up to %llu",
				     opt, arg, max);
	return 0;
}

int kubelet_args__parse(int argc, char **argv, struct kubelet_opts *o, char *err,
			size_t errlen)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, 't' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "max-body", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	int c;

	opterr = 0;
	optind = 0; /* 0, not 1: getopt's full reset (glibc), so it can run again */
	/* A leading ':' tells a missing value (':') from an unknown option. */
	while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 't': o->token_file = optarg; break;
		case 'c': o->ca_file = optarg; break;
		case 'k': o->insecure = true; break;
		case 'T':
			if (number("--timeout-ms", optarg, 3600000, &v, err, errlen))
				return -EINVAL;
			o->timeout_ms = (long)v;
			break;
		case 'm':
			if (number("--max-body", optarg, 1ull << 32, &v, err, errlen))
				return -EINVAL;
			o->max_body = (size_t)v;
			break;
		case ':':
			return kmon_err__set(err, errlen, -EINVAL, "%s needs a value",
					     argv[optind - 1]);
		default:
			return kmon_err__set(err, errlen, -EINVAL, "unknown option '%s'",
					     argv[optind - 1]);
		}
	}
	if (optind != argc)
		return kmon_err__set(err, errlen, -EINVAL, "'%s': only options are taken",
				     argv[optind]);
	if (!o->url)
		return kmon_err__set(err, errlen, -EINVAL, "--url is required");
	return 0;
}
