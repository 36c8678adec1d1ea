/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A Prometheus text-exposition (format 0.0.4) writer, shared by the agent's
 * /metrics and kmon-aggregate. It emits # HELP and # TYPE once per family,
 * escapes label values and help text as the format requires, and refuses
 * names the format does not allow, so a scrape never fails on our output.
 */
#ifndef KMON_CONSUMERS_METRICS_TEXT_H
#define KMON_CONSUMERS_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

struct metrics_text;

struct metrics_text *metrics_text__new(void);
void metrics_text__free(struct metrics_text *m);
/* Starts a family: type is "counter" or "gauge". -EINVAL for a bad name or
 * type, -ENOMEM. A family started twice writes its header once. */
int metrics_text__family(struct metrics_text *m, const char *name, const char *type,
			 const char *help);
/* One sample of the current family (name may add a suffix such as
 * _bucket; it must be a valid metric name). */
int metrics_text__sample(struct metrics_text *m, const char *name, const char *const *label_names,
			 const char *const *label_values, unsigned n_labels, double value);
int metrics_text__sample_u64(struct metrics_text *m, const char *name,
			     const char *const *label_names, const char *const *label_values,
			     unsigned n_labels, uint64_t value);
/* The text so far (NUL-terminated); valid until the next call. */
const char *metrics_text__data(const struct metrics_text *m, size_t *len);
void metrics_text__reset(struct metrics_text *m);
/* Name rules of the exposition format. */
int metrics_text__valid_name(const char *name);
int metrics_text__valid_label(const char *name);

#endif
