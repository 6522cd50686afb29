/* sm_masked: the injection-masked score. A submission flagged injection:* is graded a second
 * time, with the same seeds, on its text with the flagged spans (widened to their sentences)
 * replaced by SM_INJECT_MARKER; the RESULT carries both scores, and the flag
 * injection:score_differs when they are further apart than worker.injection_margin x
 * max_score, so the teacher sees both side by side. */
#ifndef SM_MASKED_H
#define SM_MASKED_H

#include <stdbool.h>

#include <jansson.h>

#include "sm_grade.h"

#define SM_MASKED_FLAG "injection:score_differs"

/* The margin rule: whether the two passes disagree. Two scores differ when further apart than
 * margin (compared at 2 decimals, as stored); a pass with a score and one without differ too
 * (masking changed whether the model could grade at all); two passes without a score do not. */
bool sm_masked_differs(bool has_score, double score, bool has_masked, double masked, double margin);

/* The RESULT's "masked" object into r (nothing when the job had no masked pass): score (null
 * when the masked pass gave none), summary, steps, margin (in points), differs, spans,
 * content, reasoning and tokens; adds SM_MASKED_FLAG to flags when the passes differ. Call
 * after r holds the main pass's score. */
sm_code sm_masked_json(const sm_job *job, json_t *r, json_t *flags, sm_err *err);

#endif
