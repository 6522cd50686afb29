/* sm_webhook: what the `stepmark webhook` commands and stepmarkd's delivery thread share about
 * outgoing webhooks (docs/webhooks.md): which URLs are allowed (HTTPS anywhere, plain HTTP only
 * to loopback), the signing secret, the Stepmark-Signature header (HMAC-SHA256 over
 * "timestamp.body", OpenSSL), the retry delay, and the SQL of schema/007_webhooks.sql that the
 * CLI runs (add, list, remove, log). */
#ifndef SM_WEBHOOK_H
#define SM_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "sm_error.h"

#define SM_WEBHOOK_URL_MAX 2000
#define SM_WEBHOOK_SECRET_BYTES 32                                  /* random bytes in a secret */
#define SM_WEBHOOK_SECRET_LEN (6 + 2 * SM_WEBHOOK_SECRET_BYTES + 1) /* "whsec_" + hex + NUL */
#define SM_WEBHOOK_SIG_MAX 128 /* "t=<unix>,v1=<64 hex>" and a NUL */

/* Checks that url may receive webhooks: an absolute https:// URL, or http:// to a loopback host
 * (127.0.0.0/8, [::1] or localhost); no user name or password, no fragment, at most
 * SM_WEBHOOK_URL_MAX bytes. SM_EINVAL with a message saying why not. */
sm_code sm_webhook_check_url(const char *url, sm_err *err);

/* A new signing secret: "whsec_" and 64 hex digits of kernel randomness. */
sm_code sm_webhook_new_secret(char out[SM_WEBHOOK_SECRET_LEN], sm_err *err);

/* The Stepmark-Signature header value for a body sent at unix time t:
 * "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>". */
sm_code sm_webhook_sign(const char *secret, int64_t t, const char *body, size_t len,
                        char out[SM_WEBHOOK_SIG_MAX], sm_err *err);

/* The wait before attempt number failures+1 of an event that failed `failures` times (>= 1):
 * first_ms doubled per failure, capped at max_ms, then jittered to a random value between half
 * of it and all of it. rnd is a uniformly random 32-bit number. */
int64_t sm_webhook_backoff_ms(int64_t first_ms, int64_t max_ms, int failures, uint32_t rnd);

/* CLI side. add: registers url for the course with code course_code and returns the new id and
 * secret (SM_ENOTFOUND for an unknown course, SM_EINVAL for a refused URL). */
sm_code sm_webhook_add(PGconn *db, const char *course_code, const char *url, int64_t *id,
                       char secret[SM_WEBHOOK_SECRET_LEN], sm_err *err);

/* Every webhook as a JSON array of {id, course, url, created_at, delivered, pending, attempts,
 * next_attempt_at, last_error, last_success_at}; never the secrets. */
sm_code sm_webhook_list(PGconn *db, json_t **out, sm_err *err);

/* Removes a webhook, its cursor and its log (SM_ENOTFOUND when there is none). */
sm_code sm_webhook_remove(PGconn *db, int64_t id, sm_err *err);

/* The newest `limit` delivery attempts (of one webhook when webhook_id > 0), newest first, as a
 * JSON array of {id, webhook_id, at, event, event_id, delivery, attempt, status_code, error,
 * duration_ms, broker}. */
sm_code sm_webhook_log(PGconn *db, int64_t webhook_id, int limit, json_t **out, sm_err *err);

#endif
