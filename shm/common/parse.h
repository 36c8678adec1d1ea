/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one parser of each value kmon's programs read from a command line:
 * sizes and HOST:PORT listener addresses. Agent and consumers both use these,
 * so "64K" or "[::1]:9470" mean the same to every program.
 */
#ifndef KMON_COMMON_PARSE_H
#define KMON_COMMON_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * A size: decimal digits, then optionally K, M or G (any case; powers of
 * 1024), which may be followed by "i" and then "B" ("64K", "8MiB", "1gb").
 * No sign, no space, no fraction. Returns 0, -EINVAL (not a size) or -ERANGE
 * (more than SIZE_MAX). Bounds are the caller's: each option has its own.
 */
int kmon_parse__size(const char *s, size_t *out);

/*
 * HOST:PORT of a listener, split without resolving: "0.0.0.0:9470",
 * "localhost:9470", "[::1]:9470", "[::]:9470", ":9470" (no host: the
 * loopback address, as getaddrinfo gives it). An IPv6 address needs its
 * brackets ("::1:9470" is ambiguous and refused). PORT is 1 to 65535 in
 * decimal. host receives the host without brackets ("" for none). Returns 0,
 * or -EINVAL with a message in err naming what was wrong.
 */
int kmon_parse__hostport(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
			 size_t errlen);

/*
 * kmon_parse__hostport, then the address to bind (getaddrinfo: a name is
 * resolved, the first answer taken). Returns 0, or -EINVAL with a message in
 * err that starts with option ("--metrics-addr: ..."). len may be NULL.
 */
int kmon_parse__listen_addr(const char *option, const char *s, struct sockaddr_storage *ss,
			    socklen_t *len, char *err, size_t errlen);

#endif
