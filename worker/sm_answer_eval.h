/* sm_answer_eval: internal to sm_answer. Evaluates a normalized math answer (numbers, + - * / ^,
 * parentheses and braces, \frac, \sqrt, sqrt(), pi, implicit multiplication) to an exact
 * rational (GMP, up to ANS_EVAL_MAX_BITS) when it can and to a double otherwise, with
 * bounded recursion, work and memory. */
#ifndef SM_ANSWER_EVAL_H
#define SM_ANSWER_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include <gmp.h>

typedef struct ans_val {
    bool exact;        /* q is the exact value */
    mpq_t q;           /* canonical (reduced, denominator > 0); 0 when not exact */
    double v;          /* the value as a double (may be +-inf for huge exact values) */
    bool has_decimal;  /* a decimal literal took part (compare with tolerance) */
    bool has_fraction; /* a / or \frac took part */
    bool has_ops;      /* + - * ^ sqrt pi or implicit multiplication took part */
} ans_val;

#define ANS_EVAL_MAX_DEPTH 64
/* Largest numerator or denominator kept exactly (bits); bigger results are refused or become
 * doubles. 65536 bits is about 19700 decimal digits. */
#define ANS_EVAL_MAX_BITS 32768
/* Longest number literal evaluated (digits). */
#define ANS_EVAL_MAX_DIGITS 4096

/* Initializes v (value 0, not exact); every ans_val must be cleared with ans_val_clear. */
void ans_val_init(ans_val *v);
void ans_val_clear(ans_val *v);
/* *dst = *src (dst initialized). */
void ans_val_copy(ans_val *dst, const ans_val *src);

/* Evaluates s (NUL-terminated) into *out, which this initializes (clear it afterwards, whatever
 * the result). Returns true; false with a reason in why (division by zero, unknown symbol, too
 * deep, "exponent too large to compare exactly", ...). */
bool ans_eval(const char *s, ans_val *out, char *why, int why_len);

#endif
