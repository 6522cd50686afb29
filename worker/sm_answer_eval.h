/* sm_answer_eval: internal to sm_answer. Evaluates a normalized math answer (numbers, + - * / ^,
 * parentheses and braces, \frac, \sqrt, sqrt(), pi, implicit multiplication) to an exact
 * rational when it can and to a double always, with bounded recursion and work. */
#ifndef SM_ANSWER_EVAL_H
#define SM_ANSWER_EVAL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ans_val {
    bool exact;        /* n/d is the exact value */
    int64_t n, d;      /* reduced, d > 0 (when exact) */
    double v;          /* always set */
    bool has_decimal;  /* a decimal literal took part (compare with tolerance) */
    bool has_fraction; /* a / or \frac took part */
    bool has_ops;      /* + - * ^ sqrt pi or implicit multiplication took part */
} ans_val;

#define ANS_EVAL_MAX_DEPTH 64

/* Evaluates s (NUL-terminated). Returns true and fills *out; false with a reason in why
 * (division by zero, unknown symbol, too deep, not finite, ...). */
bool ans_eval(const char *s, ans_val *out, char *why, int why_len);

#endif
