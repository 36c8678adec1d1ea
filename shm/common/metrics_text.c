// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/common/metrics_text.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 512
#define MAX_BYTES (64u << 20) /* bounded whatever the caller does */

struct metrics_text {
	char *buf;
	size_t len, cap;
	char *families[MAX_FAMILIES];
	unsigned n_families;
};

struct metrics_text *metrics_text__new(void)
{
	return calloc(1, sizeof(struct metrics_text));
}

void metrics_text__reset(struct metrics_text *m)
{
	unsigned i;

	for (i = 0; i < m->n_families; i++)
		free(m->families[i]);
	m->n_families = 0;
	m->len = 0;
	if (m->buf)
		m->buf[0] = '\0';
}

void metrics_text__free(struct metrics_text *m)
{
	if (!m)
		return;
	metrics_text__reset(m);
	free(m->buf);
	free(m);
}

static int grow(struct metrics_text *m, size_t extra)
{
	size_t need = m->len + extra + 1, nc;
	char *b;

	if (need <= m->cap)
		return 0;
	if (need > MAX_BYTES)
		return -E2BIG;
	nc = m->cap ? m->cap : 4096;
	while (nc < need)
		nc *= 2;
	b = realloc(m->buf, nc);
	if (!b)
		return -ENOMEM;
	m->buf = b;
	m->cap = nc;
	return 0;
}

static int add(struct metrics_text *m, const char *s, size_t n)
{
	int r = grow(m, n);

	if (r)
		return r;
	memcpy(m->buf + m->len, s, n);
	m->len += n;
	m->buf[m->len] = '\0';
	return 0;
}

static int addf(struct metrics_text *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int addf(struct metrics_text *m, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -EINVAL;
	return add(m, tmp, (size_t)n);
}

/* help: escape \ and newline; label values: also ". */
static int add_escaped(struct metrics_text *m, const char *s, bool quote)
{
	int r = 0;

	for (; *s && !r; s++) {
		if (*s == '\\')
			r = add(m, "\\\\", 2);
		else if (*s == '\n')
			r = add(m, "\\n", 2);
		else if (quote && *s == '"')
			r = add(m, "\\\"", 2);
		else
			r = add(m, s, 1);
	}
	return r;
}

static bool name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':'))
		return true;
	return !first && c >= '0' && c <= '9';
}

int metrics_text__valid_name(const char *n)
{
	if (!n || !*n)
		return 0;
	for (const char *p = n; *p; p++)
		if (!name_char(*p, p == n, true))
			return 0;
	return 1;
}

int metrics_text__valid_label(const char *n)
{
	if (!n || !*n || !strncmp(n, "__", 2))
		return 0;
	for (const char *p = n; *p; p++)
		if (!name_char(*p, p == n, false))
			return 0;
	return 1;
}

int metrics_text__family(struct metrics_text *m, const char *name, const char *type,
			 const char *help)
{
	unsigned i;
	int r;

	if (!metrics_text__valid_name(name) || (strcmp(type, "counter") && strcmp(type, "gauge")))
		return -EINVAL;
	for (i = 0; i < m->n_families; i++)
		if (!strcmp(m->families[i], name))
			return 0;
	if (m->n_families == MAX_FAMILIES)
		return -E2BIG;
	m->families[m->n_families] = strdup(name);
	if (!m->families[m->n_families])
		return -ENOMEM;
	m->n_families++;
	if ((r = add(m, "# HELP ", 7)) || (r = add(m, name, strlen(name))) || (r = add(m, " ", 1)) ||
	    (r = add_escaped(m, help ? help : "", false)) || (r = add(m, "\n# TYPE ", 8)) ||
	    (r = add(m, name, strlen(name))) || (r = add(m, " ", 1)) ||
	    (r = add(m, type, strlen(type))) || (r = add(m, "\n", 1)))
		return r;
	return 0;
}

static int sample_head(struct metrics_text *m, const char *name, const char *const *ln,
		       const char *const *lv, unsigned n)
{
	unsigned i;
	int r;

	if (!metrics_text__valid_name(name))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!metrics_text__valid_label(ln[i]) || !lv[i])
			return -EINVAL;
	if ((r = add(m, name, strlen(name))))
		return r;
	if (n) {
		for (i = 0; i < n; i++) {
			if ((r = add(m, i ? "," : "{", 1)) || (r = add(m, ln[i], strlen(ln[i]))) ||
			    (r = add(m, "=\"", 2)) || (r = add_escaped(m, lv[i], true)) ||
			    (r = add(m, "\"", 1)))
				return r;
		}
		if ((r = add(m, "}", 1)))
			return r;
	}
	return add(m, " ", 1);
}

int metrics_text__sample(struct metrics_text *m, const char *name, const char *const *ln,
			 const char *const *lv, unsigned n, double v)
{
	size_t mark = m->len;
	int r = sample_head(m, name, ln, lv, n);

	if (!r) {
		if (isnan(v))
			r = add(m, "NaN\n", 4);
		else if (isinf(v))
			r = add(m, v > 0 ? "+Inf\n" : "-Inf\n", v > 0 ? 5 : 5);
		else
			r = addf(m, "%.17g\n", v);
	}
	if (r) {
		m->len = mark; /* never leave half a line */
		if (m->buf)
			m->buf[m->len] = '\0';
	}
	return r;
}

int metrics_text__sample_u64(struct metrics_text *m, const char *name, const char *const *ln,
			     const char *const *lv, unsigned n, uint64_t v)
{
	size_t mark = m->len;
	int r = sample_head(m, name, ln, lv, n);

	if (!r)
		r = addf(m, "%" PRIu64 "\n", v);
	if (r) {
		m->len = mark;
		if (m->buf)
			m->buf[m->len] = '\0';
	}
	return r;
}

const char *metrics_text__data(const struct metrics_text *m, size_t *len)
{
	if (len)
		*len = m->len;
	return m->buf ? m->buf : "";
}
