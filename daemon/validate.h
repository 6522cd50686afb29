/* validate: checks of request bodies before anything reaches the database (validate.c,
 * docs/protocol.md). Used by the broker's client and worker commands and by the HTTP API's
 * POST /api/v1/submissions, so a submission is judged the same way whichever way it came. */
#ifndef SM_VALIDATE_H
#define SM_VALIDATE_H

#include <stdbool.h>

#include <jansson.h>

#include "sm_error.h"
#include "store.h"

sm_code sm_validate_submit(const json_t *body, const char **course, const char **assignment,
                           int *priority, sm_err *err);
sm_code sm_validate_submit_kind(const json_t *body, const sm_assignment_ref *a, sm_err *err);
sm_code sm_validate_assignment(const json_t *body, bool create, sm_err *err);
/* The cross-checks of a rubric of criteria against the rest of the assignment a (a whole
 * assignment: the body of a create, or the stored one with an update's fields laid over):
 * checks need the tests or answer key they name; max_score, when given, is the sum of the
 * points. SM_OK for a free-text rubric or none. */
sm_code sm_validate_assignment_rubric(const json_t *a, sm_err *err);
sm_code sm_validate_result(const json_t *body, sm_err *err);

/* LIST: course and assignment codes, and the page wanted (q->assignment_id is left 0). */
struct sm_list_query;
sm_code sm_validate_list(const json_t *body, const char **course, const char **assignment,
                         struct sm_list_query *q, sm_err *err);

#endif
