/* grades: the grade queries shared by the broker (STATUS, RESULT, LIST over ZeroMQ) and the
 * HTTP API, so that both return the same SQL and the same JSON shapes (docs/protocol.md).
 * Every function takes the caller's PGconn (the broker's single connection, or one of the HTTP
 * side's pool) and runs one statement. The `final` block comes from SQL sm_final() (schema
 * 006): the grade after review and release, beside the model's own grading. */
#ifndef SM_GRADES_H
#define SM_GRADES_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "sm_error.h"

#define SM_LIST_DEFAULT 100 /* LIST page size when none is given */
#define SM_LIST_MAX 1000    /* largest LIST page */

typedef struct sm_list_query {
    int64_t assignment_id;     /* required */
    const char *cursor;        /* opaque, from a previous page's next_cursor, or NULL */
    const char *updated_since; /* RFC 3339 timestamp or NULL; used only without cursor */
    int limit;                 /* 1..1000; 0 means 100 */
} sm_list_query;

/* STATUS of a submission: its latest job's state, the model's grading and the final block.
 * SM_ENOTFOUND when it does not exist. */
sm_code sm_grades_status(PGconn *db, int64_t submission_id, json_t **out, sm_err *err);
/* The same, found by its idempotency key. */
sm_code sm_grades_status_by_key(PGconn *db, const char *key, json_t **out, sm_err *err);

/* The latest grading with steps, checks and the final block, and its reasoning chains under
 * "reasoning" only when reasoning is true (else the key is absent). SM_ENOTFOUND for an
 * unknown submission, SM_ESTATE when it has no grading yet. */
sm_code sm_grades_result(PGconn *db, int64_t submission_id, bool reasoning, json_t **out,
                         sm_err *err);

/* The final block alone; *out is json null when the submission has no grading. */
sm_code sm_grades_final(PGconn *db, int64_t submission_id, json_t **out, sm_err *err);

/* One page of an assignment's submissions in change order.
 * page: {"items":[{submission_id, student_ref, idempotency_key, state, updated_at,
 *                  grading{...}|null, final{...}|null}...], "next_cursor": "...", "more": bool}
 * Items are ordered by (change_xid, id) and only changes of transactions that have ended
 * before every still-running one are shown, so following next_cursor misses and repeats
 * nothing (docs/protocol.md, LIST). SM_EINVAL for a bad cursor, timestamp or limit. */
sm_code sm_grades_list(PGconn *db, const sm_list_query *q, json_t **page, sm_err *err);

/* Whether s is an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)). */
bool sm_grades_rfc3339_ok(const char *s);

#endif
