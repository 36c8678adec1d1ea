/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Events as OpenTelemetry logs: the body of an OTLP/HTTP `POST /v1/logs`
 * (ExportLogsServiceRequest, protobuf or the OTLP JSON mapping), and the
 * partial-success count of its answer.
 *
 * kmon-forward writes one compact item per event (the record plus the
 * container's names, otlp__item); the HTTP sink gathers items into a batch
 * and hands the batch here when it seals it. A batch becomes one request:
 * one ResourceLogs per container (k8s.* and container.id resource attributes
 * from the OpenTelemetry semantic conventions, service.name=kmon), one
 * ScopeLogs (scope "kmon" and its version), one LogRecord per event, in
 * arrival order within a container.
 *
 * The protobuf writer is hand-written for exactly these messages (field
 * numbers from opentelemetry-proto, cited where written): Debian ships no
 * OTLP .proto files, and the messages are a handful of length-delimited
 * fields. Strings are kernel or tenant bytes: invalid UTF-8 becomes U+FFFD in
 * both encodings, as proto3 requires of a string field.
 */
#ifndef KMON_CONSUMERS_OTLP_H
#define KMON_CONSUMERS_OTLP_H

#include <stddef.h>
#include <stdint.h>

struct kmon_event;
struct kmon_meta;

enum otlp_encoding {
	OTLP_PROTOBUF = 0, /* application/x-protobuf (the OTLP/HTTP default) */
	OTLP_JSON = 1,     /* application/json, the OTLP JSON mapping */
};

/* Bytes that always hold one item (record + 5 names of at most 255 bytes). */
#define OTLP_ITEM_MAX (128 + 5 * 256)

/* Writes the item for one event into buf. meta may be NULL (a process not
 * in a known container). Returns its length, or -ENOSPC. */
int otlp__item(char *buf, size_t cap, const struct kmon_event *ev, const struct kmon_meta *meta);

struct otlp_encoder;

/* version: the scope's version (kmon's). boot_offset_ns: CLOCK_REALTIME -
 * CLOCK_BOOTTIME (event_json__boot_offset_ns), as the JSON line uses. */
struct otlp_encoder *otlp_encoder__new(enum otlp_encoding enc, const char *version,
				       uint64_t boot_offset_ns);
void otlp_encoder__free(struct otlp_encoder *e);
/* The node's name (k8s.node.name), once the agent said it. Copied. */
int otlp_encoder__set_node(struct otlp_encoder *e, const char *node);
const char *otlp_encoder__content_type(const struct otlp_encoder *e);
/* The agent's symbol table for the encodes that follow (NULL: none), which
 * names call sites as the JSON line does; it must outlive those encodes. */
struct kmon_symtab;
void otlp_encoder__set_symtab(struct otlp_encoder *e, const struct kmon_symtab *st);
/* items: n_items items back to back, as otlp__item wrote them. On success
 * *body is malloc'd (the caller frees it). -EINVAL: an item is malformed;
 * -ENOMEM. */
int otlp_encoder__encode(struct otlp_encoder *e, const char *items, size_t len,
			 uint64_t n_items, char **body, size_t *body_len);
/* A 2xx answer's body (possibly cut short): log records the receiver says it
 * rejected (ExportLogsServiceResponse.partial_success.rejected_log_records),
 * 0 when it says none or nothing readable. */
uint64_t otlp_encoder__rejected(const struct otlp_encoder *e, const char *answer, size_t len);

#endif
