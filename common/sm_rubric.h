/* sm_rubric: an assignment's rubric, either free text or a list of criteria scored one by one
 * (issue 31). sm_rubric_parse checks the shape of a criteria list (ids, descriptions, points,
 * checks); whether its checks exist in the assignment is the caller's business (the broker's
 * daemon/validate.c). Used by the broker (assignments, RESULT validation) and the worker
 * (prompt, verdict parsing, scoring). */
#ifndef SM_RUBRIC_H
#define SM_RUBRIC_H

#include <stdbool.h>

#include <jansson.h>

#include "sm_error.h"

#define SM_RUBRIC_MAX_CRITERIA 50
#define SM_RUBRIC_ID_MAX 32
#define SM_RUBRIC_DESCRIPTION_MAX 2000
#define SM_RUBRIC_POINTS_MAX 999999.0
#define SM_RUBRIC_MAX_CHECKS 20

typedef struct sm_criterion {
    char id[SM_RUBRIC_ID_MAX + 1];
    char *description;
    double points;
    char **checks; /* NULL-free array of n_checks strings */
    int n_checks;
} sm_criterion;

typedef struct sm_rubric {
    const char *text; /* borrowed: the free-text rubric, or NULL */
    sm_criterion *c;  /* owned; NULL when the rubric is free text or absent */
    int n;
    double total; /* sum of points */
} sm_rubric;

/* rubric: NULL/JSON null (no rubric), a JSON string (free text) or an array of criteria.
 * SM_EINVAL with a message naming the field ("rubric[2].points must be ...") otherwise.
 * out is always initialised (cleared on failure); release it with sm_rubric_clear. */
sm_code sm_rubric_parse(const json_t *rubric, sm_rubric *out, sm_err *err);
void sm_rubric_clear(sm_rubric *r);
/* The criterion named id, or NULL. */
const sm_criterion *sm_rubric_find(const sm_rubric *r, const char *id);

/* True when x has at most 2 decimals (x*100 integral within rounding error). */
bool sm_rubric_two_decimals(double x);
/* True for a valid criterion id: 1..32 characters of [A-Za-z0-9_.-]. */
bool sm_rubric_id_valid(const char *id);

#endif
