// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/common/parse.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/err.h"

int kmon_parse__size(const char *s, size_t *out)
{
	unsigned long long v, mult = 1;
	char *end;

	/* strtoull would take a sign, leading space and "0x": none is a size. */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return errno == ERANGE ? -ERANGE : -EINVAL;
	if (*end) {
		switch (*end) {
		case 'k': case 'K': mult = 1ULL << 10; break;
		case 'm': case 'M': mult = 1ULL << 20; break;
		case 'g': case 'G': mult = 1ULL << 30; break;
		default: return -EINVAL;
		}
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (v > SIZE_MAX / mult)
		return -ERANGE;
	*out = (size_t)(v * mult);
	return 0;
}

int kmon_parse__hostport(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
			 size_t errlen)
{
	const char *h = s, *colon;
	size_t hlen;
	unsigned long p;
	char *end;

	if (!s || !*s)
		return kmon_err__set(err, errlen, -EINVAL, "empty address: want HOST:PORT");
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return kmon_err__set(err, errlen, -EINVAL,
					     "'%s': '[' without ']' (want [IPV6]:PORT)", s);
		if (close[1] != ':')
			return kmon_err__set(err, errlen, -EINVAL,
					     "'%s': no ':PORT' after ']' (want [IPV6]:PORT)", s);
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		if (!hlen)
			return kmon_err__set(err, errlen, -EINVAL, "'%s': empty brackets", s);
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return kmon_err__set(err, errlen, -EINVAL, "'%s' is not HOST:PORT", s);
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return kmon_err__set(err, errlen, -EINVAL,
					     "'%s': an IPv6 address goes in brackets: [ADDR]:PORT", s);
	}
	if (hlen >= hostlen)
		return kmon_err__set(err, errlen, -EINVAL, "'%s': host longer than %zu bytes", s,
				     hostlen - 1);
	if (colon[1] < '0' || colon[1] > '9')
		return kmon_err__set(err, errlen, -EINVAL, "'%s': port is not a number", s);
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || p > 65535)
		return kmon_err__set(err, errlen, -EINVAL, "'%s': port is not a number from 0 to 65535",
				     s);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int kmon_parse__listen_addr(const char *option, const char *s, struct sockaddr_storage *ss,
			    socklen_t *len, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *res = NULL;
	char host[256], port[8], why[200];
	uint16_t p = 0; /* set on success; gcc -O3 cannot see that */
	int r;

	if (kmon_parse__hostport(s, host, sizeof(host), &p, why, sizeof(why)))
		return kmon_err__set(err, errlen, -EINVAL, "%s: %s", option, why);
	snprintf(port, sizeof(port), "%u", (unsigned)p);
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (r)
		return kmon_err__set(err, errlen, -EINVAL, "%s: %s: %s", option, s,
				     gai_strerror(r));
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return kmon_err__set(err, errlen, -EINVAL, "%s: %s: address too long", option, s);
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	if (len)
		*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}
