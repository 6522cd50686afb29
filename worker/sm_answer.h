/* sm_answer: extracts the final answer from a math solution and compares it with the answer
 * key by value (integers of any size, fractions, decimals with tolerance, percents, simple
 * expressions, sets and tuples), ignoring LaTeX noise. Bounded work on hostile input. */
#ifndef SM_ANSWER_H
#define SM_ANSWER_H

#include <stddef.h>

#include <jansson.h>

#include "sm_answer_policy.h" /* how answers are compared: answer_policy */
#include "sm_error.h"

/* Longest text looked at (longer input is cut to its last SM_ANSWER_MAX_TEXT bytes). */
#define SM_ANSWER_MAX_TEXT (1024 * 1024)
/* Longest answer compared (longer answers compare as "string", never evaluated). */
#define SM_ANSWER_MAX_ANSWER 4096

/* Extracts the final answer from a student's (or the model's) text: the last \boxed{...} or
 * \fbox{...} (balanced braces), else the last "Final Answer:" / "Answer:" line, else the last
 * math expression ($...$, \(...\), \[...\], or the right-hand side of the last line's "=").
 * *answer is malloc'd (free it), or NULL when none was found. Errors: SM_EINVAL (NULL text),
 * SM_ENOMEM. */
sm_code sm_answer_extract(const char *text, char **answer, sm_err *err);

/* Where and how a final answer was found. */
typedef struct sm_answer_found {
    char *answer;     /* malloc'd (free it), or NULL when none was found */
    const char *rule; /* static text: "boxed", "final-answer line", "\"the result is\"
                              sentence", "variables in a sentence", "last line", ... */
    size_t span_off;  /* the source sentence or line: text[span_off .. +span_len) */
    size_t span_len;
} sm_answer_found;

/* Like sm_answer_extract, also saying which rule found the answer and where. Prose is read
 * too: "Hence the result is 0.75", "so x = 3 and y = -1" (-> "x = 3, y = -1"), "In 2 steps
 * we get 12" (-> "12"). */
sm_code sm_answer_find(const char *text, sm_answer_found *found, sm_err *err);

/* Compares student_text's final answer with answer_key under policy (NULL: the defaults).
 * *out as for sm_answer_compare, plus "rule", "source" (the sentence or line it came from),
 * "normalized" {extracted, expected} (the texts compared), "values" {extracted, expected}
 * (the numbers compared), "units" (a sentence: how units were treated), "percent" (how a %
 * was read) and "policy" (the policy applied). */
sm_code sm_answer_compare_policy(const char *student_text, const char *answer_key,
                                 const sm_answer_policy *policy, json_t **out, sm_err *err);

/* Extracts the student's final answer and compares it by value with answer_key (itself
 * extracted when it contains \boxed{} etc.). *out is a new JSON object:
 *   {"extracted": str|null, "expected": str, "equal": bool,
 *    "method": "integer|fraction|decimal|expression|set|tuple|string|none", "detail": str}
 * Errors only for bad arguments (NULL) or memory. */
sm_code sm_answer_compare(const char *student_text, const char *answer_key, json_t **out,
                          sm_err *err);

/* Compares two already-extracted answers by value (same rules and result as above, with
 * "extracted" = a). */
sm_code sm_answer_compare_values(const char *a, const char *b, json_t **out, sm_err *err);

#endif
