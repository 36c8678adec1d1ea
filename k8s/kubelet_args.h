/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kubelet client's options on a command line, parsed once: the kubelet
 * helper (kmon-kubelet-get, which kmon-agent runs with its --kubelet-*
 * values) and the library's test driver take the same ones:
 *   --url URL [--token-file F] [--ca-file F] [--insecure]
 *   [--timeout-ms N (0..3600000)] [--max-body N (0..4G)]
 */
#ifndef KMON_K8S_KUBELET_ARGS_H
#define KMON_K8S_KUBELET_ARGS_H

#include <stddef.h>

#include "k8s/kubelet.h"

/*
 * Fills o (its sz set first by the caller) from argv[1..argc-1]; strings
 * point into argv. --url is required and nothing but these options may be
 * there. Returns 0, or -EINVAL with a message in err naming the option or
 * argument that was wrong. Uses getopt_long (resets optind first).
 */
int kubelet_args__parse(int argc, char **argv, struct kubelet_opts *o, char *err,
			size_t errlen);

#endif
