/* sm_answer_policy: an assignment's answer_policy (how math answers are compared: percent
 * reading, tolerance, units), its defaults and its one parser. A tiny library of its own
 * (sm_answer_policy) so that the broker validates an assignment with the same rules the worker
 * applies (docs/teacher-guide.md, "How math answers are checked"). */
#ifndef SM_ANSWER_POLICY_H
#define SM_ANSWER_POLICY_H

#include <jansson.h>

#include "sm_error.h"

typedef enum sm_percent_policy {
    SM_PERCENT_EITHER,  /* 50% equals 0.5 and 50 (the default) */
    SM_PERCENT_RATIO,   /* 50% is 0.5: equals 0.5, not 50 */
    SM_PERCENT_PERCENT, /* 50% is 50: equals 50, not 0.5 */
} sm_percent_policy;

typedef enum sm_units_policy {
    SM_UNITS_CHECK,  /* same dimension: converted; different: unequal; one side only: noted */
    SM_UNITS_IGNORE, /* units are dropped before comparing (the default before units existed) */
} sm_units_policy;

typedef struct sm_answer_policy {
    sm_percent_policy percent;
    double tolerance; /* relative tolerance when a decimal takes part (default 1e-6) */
    sm_units_policy units;
} sm_answer_policy;

#define SM_ANSWER_DEFAULT_TOLERANCE 1e-6

/* The defaults: percent either, tolerance 1e-6, units check. */
sm_answer_policy sm_answer_policy_default(void);

/* Reads {"percent": "either|ratio|percent", "tolerance": 0..0.5, "units": "ignore|check"} (all
 * optional; NULL or JSON null gives the defaults). SM_EINVAL with a message for anything else. */
sm_code sm_answer_policy_parse(const json_t *j, sm_answer_policy *out, sm_err *err);

/* p as a new JSON object {"percent", "tolerance", "units"} (NULL when out of memory). */
json_t *sm_answer_policy_json(const sm_answer_policy *p);

#endif
