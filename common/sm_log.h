/* sm_log: the one logger of every stepmark program. Lines look like
 *   2026-11-23T09:00:00.123Z info  broker started endpoint=tcp://127.0.0.1:5555 workers=0
 * Levels, UTC timestamps, key=value fields, to stderr or a file. Values of fields whose key
 * names a secret (password, token, secret, key material) are written as "***", and passwords
 * inside URLs are masked, so secrets never reach a log. The logger is configured once by main. */
#ifndef SM_LOG_H
#define SM_LOG_H

#include "sm_error.h"

typedef enum sm_log_level {
    SM_LOG_DEBUG = 0,
    SM_LOG_INFO,
    SM_LOG_WARN,
    SM_LOG_ERROR,
    SM_LOG_OFF
} sm_log_level;

/* Parses "debug", "info", "warn" or "error" (also "off"); returns SM_EINVAL otherwise. */
sm_code sm_log_level_parse(const char *name, sm_log_level *out);

/* Sets the minimum level and the destination (NULL or "" = stderr; otherwise appended to). */
sm_code sm_log_configure(sm_log_level level, const char *file, sm_err *err);

/* Closes a log file opened by sm_log_configure and returns to stderr. */
void sm_log_close(void);

/* Logs msg followed by key=value fields given as NULL-terminated pairs of strings:
 *   sm_log(SM_LOG_INFO, "job leased", "job", "42", "worker", name, NULL); */
void sm_log(sm_log_level level, const char *msg, ...) __attribute__((sentinel));

/* Like sm_log, with a printf-formatted message and no fields. */
void sm_logf(sm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes into out (size n) a copy of value with secrets masked: the whole value when key names
 * a secret; else the password of any "scheme://user:password@" (for postgres URIs up to the
 * '@', spaces and quotes included) and the value of any "password = ..." (quoted with '...'
 * or "..." and backslash escapes, or up to whitespace or '&'). To print a database URL on its
 * own, prefer sm_db_redact, which parses it as libpq does. */
void sm_log_redact(const char *key, const char *value, char *out, size_t n);

#endif
