/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one levelled logger of kmon's binaries (agent and consumers). Libraries
 * (shm/, k8s/) never log; they return errors and the binaries report them here.
 * Lines go to stderr as "kmon-agent: level: message".
 */
#ifndef KMON_LOG_H
#define KMON_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_init(const char *prog, enum log_level level);
/* Parses "error|warn|info|debug"; returns 0, or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A program's complaint about how it was started (bad option, cannot listen):
 * "prog: message" on stderr, without time or level, since it is read by the
 * person who typed the command. Returns -1 so `return log_fail(...)` ends a
 * parse. prog is log_init's.
 */
int log_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
