/* http_review_criteria: a teacher's adjustment of a grading scored by rubric criteria
 * (issue 31): the points asked for each named criterion are checked against the grading's
 * criteria, the new total is the sum of every criterion's current points, and one
 * review_criterion row per criterion records its points before and after. */
#ifndef HTTP_REVIEW_CRITERIA_H
#define HTTP_REVIEW_CRITERIA_H

#include <stdbool.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "sm_error.h"

/* The criteria of grading gid with their current points (sm_grading_criteria), into *out (an
 * array, empty for a grading without criteria). */
sm_code http_review_criteria_load(PGconn *db, const char *gid, json_t **out, sm_err *err);

/* The change: asked ({"id": points}) applied to current (from http_review_criteria_load).
 * On success *rows is [{id, old, new}] for every criterion and total the new sum ("%.2f");
 * false with msg (a 400's message) when asked names an unknown criterion, gives points that
 * are not a number within [0, max_points] with at most 2 decimals, or leaves a criterion
 * without points unnamed. */
bool http_review_criteria_apply(const json_t *current, const json_t *asked, json_t **rows,
                                char total[32], char msg[256]);

/* Stores rows (from http_review_criteria_apply) as review_criterion rows of review_id. */
sm_code http_review_criteria_store(PGconn *db, const char *review_id, const json_t *rows,
                                   sm_err *err);

#endif
