/* sm_criteria: a job's rubric criteria (issue 31). What the deterministic checks say about each
 * criterion (for the prompt and the checks_contradict_criterion flag), and the RESULT's
 * "criteria": per criterion the median of the valid samples' points, the majority verdict,
 * the evidence and the agreement (docs/protocol.md RESULT, docs/worker.md). */
#ifndef SM_CRITERIA_H
#define SM_CRITERIA_H

#include <stdbool.h>

#include <jansson.h>

#include "sm_grade.h"
#include "sm_rubric.h"

/* What the checks a criterion lists say. */
typedef enum sm_crit_checks {
    SM_CRIT_CHECKS_NONE = 0, /* it lists none, or some did not run and none failed */
    SM_CRIT_CHECKS_PASSED,   /* every listed check ran and passed */
    SM_CRIT_CHECKS_FAILED,   /* at least one of them failed */
} sm_crit_checks;

/* The outcome of the checks c lists, found in checks (the RESULT's "checks" entries: kind
 * compile/test/answer with name and passed). When text is not NULL, *text is a malloc'd line
 * for the prompt ("test add_small passed, test add_big FAILED"), or NULL when c lists no
 * checks (or out of memory). */
sm_crit_checks sm_criteria_checks(const json_t *checks, const sm_criterion *c, char **text);

/* The RESULT's "criteria" for job's valid samples (at least one): into r (key "criteria"), the
 * flag checks_contradict_criterion into flags, and *score = the sum of the criteria's points.
 * Does nothing when the job's rubric has no criteria. */
sm_code sm_criteria_json(const sm_job *job, json_t *r, json_t *flags, double *score, sm_err *err);

/* The RESULT's "criteria" when no sample is valid: verdict, points and agreement null. */
sm_code sm_criteria_json_empty(const sm_job *job, json_t *r, sm_err *err);

#endif
