/* sm_result: the parts of a job's RESULT body (sm_job_result in sm_grade.h assembles them):
 * the median of the valid samples' scores, the representative sample, the per-step majority
 * vote with its agreement, the confidence, the contradiction between score and checks, and
 * the provisional score from the checks alone that a teacher may approve when the model
 * gives no score. Pure functions of their inputs, so unit tests can pin each one down. */
#ifndef SM_RESULT_H
#define SM_RESULT_H

#include <stdbool.h>

#include "sm_grade.h"

/* The median of v[0, n) (sorts v in place); 0 for n < 1. */
double sm_grade_median(double *v, int n);

/* The first valid sample whose score is nearest to score; -1 when none is valid. */
int sm_grade_representative(const sm_job *job, double score);

/* One step's vote across the valid samples. */
typedef struct sm_step_vote {
    sm_verdict_kind verdict;    /* the majority; a tie goes to the representative's verdict,
                                 * then the more severe one (incorrect, incomplete, unclear,
                                 * correct) */
    double agreement;           /* holders of the majority / all samples */
    const sm_verdict_step *src; /* quote and explanation: the first valid sample holding it */
} sm_step_vote;

/* The vote on step k (0-based) of the representative sample rep. */
sm_step_vote sm_grade_vote_step(const sm_job *job, int rep, int k);

/* The confidence: the mean agreement over n_steps steps, lowered by up to half as the valid
 * samples' scores spread over max_score. 0 without steps. */
double sm_grade_confidence(double agree_sum, int n_steps, double spread, double max_score);

/* Whether a model's score contradicts the checks: under half marks when all passed, full marks
 * when some failed, over half marks when the program did not compile. */
bool sm_grade_contradicts(sm_check_verdict v, double max_score, double score);

/* The provisional score the checks give on their own: the tests' points earned / total x
 * max_score (0 when the program did not compile), or the answer key (max_score when the final
 * answer equals it, 0 when not). False when the checks cannot score the submission (no tests,
 * no key, no final answer found, the sandbox was down). */
bool sm_provisional_from_checks(const sm_check_tally *t, double max_score, sm_provisional *out);

/* One sample's reasoning chain {sample: i, text, tokens}: the critique, and the rejected
 * block's repair if any. NULL when out of memory. */
json_t *sm_grade_chain_json(const sm_sample *s, int i);

/* The model's verdict from job's valid samples, whose scores are scores[0, n_valid) (n_valid >=
 * 1; sorted in place): "score" (the median), "steps" and "summary" into r, the low_agreement
 * and checks_contradict_score flags into flags, the confidence into *confidence. */
sm_code sm_grade_verdict_json(const sm_job *job, double *scores, int n_valid, json_t *r,
                              json_t *flags, double *confidence, sm_err *err);

/* "tests" or "answer_key" (the RESULT's provisional.basis). */
const char *sm_provisional_basis_name(sm_provisional_basis b);

#endif
