/* sm_answer_eval: a small recursive-descent evaluator for final answers. Values are exact
 * rationals (GMP mpq_t) while they stay under ANS_EVAL_MAX_BITS, and doubles otherwise;
 * recursion depth, the number of steps, literal lengths and exponents are bounded so hostile
 * input costs little time and memory. */
#include "sm_answer_eval.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 20000
#define MAX_FACTORIAL 1000

typedef struct parser {
    const char *s;
    size_t i;
    int depth;
    int steps;
    char *why;
    int why_len;
    bool failed;
} parser;

void ans_val_init(ans_val *v)
{
    memset(v, 0, sizeof *v);
    mpq_init(v->q);
}

void ans_val_clear(ans_val *v)
{
    mpq_clear(v->q);
}

void ans_val_copy(ans_val *dst, const ans_val *src)
{
    mpq_set(dst->q, src->q);
    dst->exact = src->exact;
    dst->v = src->v;
    dst->has_decimal = src->has_decimal;
    dst->has_fraction = src->has_fraction;
    dst->has_ops = src->has_ops;
}

static bool fail(parser *p, const char *msg)
{
    if (!p->failed)
        snprintf(p->why, (size_t)p->why_len, "%s", msg);
    p->failed = true;
    return false;
}

static void skip_ws(parser *p)
{
    while (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n')
        p->i++;
}

static bool starts(parser *p, const char *w)
{
    skip_ws(p);
    size_t n = strlen(w);
    if (strncmp(p->s + p->i, w, n) != 0)
        return false;
    /* a command or name must not run on into more letters (\pi vs \pin) */
    if (isalpha((unsigned char)w[n - 1]) && isalpha((unsigned char)p->s[p->i + n]))
        return false;
    return true;
}

static bool eat(parser *p, const char *w)
{
    if (!starts(p, w))
        return false;
    p->i += strlen(w);
    return true;
}

static size_t qbits(const mpq_t q)
{
    size_t a = mpz_sizeinbase(mpq_numref(q), 2), b = mpz_sizeinbase(mpq_denref(q), 2);
    return a > b ? a : b;
}

/* The double nearest q, +-inf when it is out of range (GMP leaves that undefined). */
static double q_to_d(const mpq_t q)
{
    if (mpq_sgn(q) == 0)
        return 0.0;
    long na = (long)mpz_sizeinbase(mpq_numref(q), 2), nb = (long)mpz_sizeinbase(mpq_denref(q), 2);
    if (na - nb > 1030)
        return mpq_sgn(q) < 0 ? -INFINITY : INFINITY;
    if (nb - na > 1080)
        return 0.0;
    return mpq_get_d(q);
}

/* After an exact operation: keep it exact while small enough, else only the double. */
static void settle(ans_val *r)
{
    r->v = q_to_d(r->q);
    if (qbits(r->q) > ANS_EVAL_MAX_BITS) {
        r->exact = false;
        mpq_set_ui(r->q, 0, 1);
    }
}

static void set_int(ans_val *r, long n)
{
    r->exact = true;
    mpq_set_si(r->q, n, 1);
    r->v = (double)n;
}

static void set_real(ans_val *r, double x)
{
    r->exact = false;
    mpq_set_ui(r->q, 0, 1);
    r->v = x;
}

static void merge_flags(ans_val *r, const ans_val *b)
{
    r->has_decimal = r->has_decimal || b->has_decimal;
    r->has_fraction = r->has_fraction || b->has_fraction;
    r->has_ops = r->has_ops || b->has_ops;
}

static void negate(ans_val *r)
{
    mpq_neg(r->q, r->q);
    r->v = -r->v;
}

/* r += b (or r -= b). */
static void v_add(ans_val *r, const ans_val *b, int sign)
{
    if (r->exact && b->exact) {
        if (sign < 0)
            mpq_sub(r->q, r->q, b->q);
        else
            mpq_add(r->q, r->q, b->q);
        settle(r);
    } else {
        set_real(r, sign < 0 ? r->v - b->v : r->v + b->v);
    }
    merge_flags(r, b);
    r->has_ops = true;
}

/* r *= b. */
static void v_mul(ans_val *r, const ans_val *b)
{
    if (r->exact && b->exact) {
        mpq_mul(r->q, r->q, b->q);
        settle(r);
    } else {
        set_real(r, r->v * b->v);
    }
    merge_flags(r, b);
    r->has_ops = true;
}

/* r /= b. */
static bool v_div(parser *p, ans_val *r, const ans_val *b)
{
    if ((b->exact && mpq_sgn(b->q) == 0) || (!b->exact && b->v == 0.0))
        return fail(p, "division by zero");
    if (r->exact && b->exact) {
        mpq_div(r->q, r->q, b->q);
        settle(r);
    } else {
        set_real(r, r->v / b->v);
    }
    merge_flags(r, b);
    r->has_fraction = true;
    return true;
}

/* The exact k-th root of z when there is one. */
static bool exact_root(mpz_t out, const mpz_t z, unsigned long k)
{
    if (mpz_sgn(z) < 0 && k % 2 == 0)
        return false;
    return mpz_root(out, z, k) != 0;
}

/* r = the k-th root of r (k >= 2). */
static bool v_root(parser *p, ans_val *r, unsigned long k)
{
    if (r->v < 0 && (k % 2 == 0 || !r->exact))
        return fail(p, k == 2 ? "square root of a negative number" : "root of a negative number");
    bool done = false;
    if (r->exact) {
        mpz_t n, d;
        mpz_inits(n, d, NULL);
        if (exact_root(n, mpq_numref(r->q), k) && exact_root(d, mpq_denref(r->q), k)) {
            mpz_set(mpq_numref(r->q), n);
            mpz_set(mpq_denref(r->q), d);
            mpq_canonicalize(r->q);
            settle(r);
            done = true;
        }
        mpz_clears(n, d, NULL);
    }
    if (!done)
        set_real(r, k == 2     ? sqrt(r->v)
                    : r->v < 0 ? -pow(-r->v, 1.0 / (double)k)
                               : pow(r->v, 1.0 / (double)k));
    r->has_ops = true;
    return true;
}

/* r = r ^ e: exact for an integer exponent while the result stays under ANS_EVAL_MAX_BITS. */
static bool v_pow(parser *p, ans_val *r, const ans_val *e)
{
    bool int_exp = e->exact && mpz_cmp_ui(mpq_denref(e->q), 1) == 0;
    if (r->exact && int_exp) {
        mpz_srcptr ez = mpq_numref(e->q);
        bool neg = mpz_sgn(ez) < 0;
        bool unit = mpz_cmpabs_ui(mpq_numref(r->q), 1) == 0 && mpz_cmp_ui(mpq_denref(r->q), 1) == 0;
        if (mpq_sgn(r->q) == 0) {
            if (neg)
                return fail(p, "division by zero");
            set_int(r, mpz_sgn(ez) == 0 ? 1 : 0);
        } else if (unit) {
            if (mpq_sgn(r->q) < 0 && mpz_even_p(ez))
                set_int(r, 1);
        } else if (mpz_cmpabs_ui(ez, ANS_EVAL_MAX_BITS) <= 0 &&
                   mpz_get_ui(ez) * (qbits(r->q) - 1) <= ANS_EVAL_MAX_BITS) {
            unsigned long k = mpz_get_ui(ez); /* absolute value */
            mpz_pow_ui(mpq_numref(r->q), mpq_numref(r->q), k);
            mpz_pow_ui(mpq_denref(r->q), mpq_denref(r->q), k);
            if (neg)
                mpq_inv(r->q, r->q);
            settle(r);
        } else {
            double x = pow(r->v, e->v);
            if (!isfinite(x) || x == 0.0)
                return fail(p, "exponent too large to compare exactly");
            set_real(r, x);
        }
        merge_flags(r, e);
        r->has_ops = true;
        return true;
    }
    if (r->v == 0 && e->v < 0)
        return fail(p, "division by zero");
    set_real(r, pow(r->v, e->v));
    merge_flags(r, e);
    r->has_ops = true;
    return true;
}

static bool expr(parser *p, ans_val *out);
static bool unary(parser *p, ans_val *out);

/* {expr} or, LaTeX style, a single digit (\frac12, \sqrt2). */
static bool group(parser *p, ans_val *out)
{
    skip_ws(p);
    if (p->s[p->i] == '{') {
        p->i++;
        if (!expr(p, out))
            return false;
        skip_ws(p);
        if (p->s[p->i] != '}')
            return fail(p, "missing }");
        p->i++;
        return true;
    }
    if (isdigit((unsigned char)p->s[p->i])) {
        set_int(out, p->s[p->i] - '0');
        p->i++;
        return true;
    }
    return fail(p, "expected {...} after a command");
}

/* "e-3" / "E10" after a number: multiplies out by 10^exponent, exactly. */
static bool sci_exponent(parser *p, ans_val *out, size_t digits)
{
    size_t j = p->i + 1;
    bool neg = p->s[j] == '-';
    if (p->s[j] == '-' || p->s[j] == '+')
        j++;
    unsigned long e = 0;
    while (isdigit((unsigned char)p->s[j])) {
        if (e < 100000000UL)
            e = e * 10 + (unsigned long)(p->s[j] - '0');
        j++;
    }
    p->i = j;
    /* 10^e has about 3.33 e bits */
    if ((e + digits) * 10 / 3 > ANS_EVAL_MAX_BITS)
        return fail(p, "exponent too large to compare exactly");
    mpz_t t;
    mpz_init(t);
    mpz_ui_pow_ui(t, 10, e);
    if (neg)
        mpz_mul(mpq_denref(out->q), mpq_denref(out->q), t);
    else
        mpz_mul(mpq_numref(out->q), mpq_numref(out->q), t);
    mpz_clear(t);
    mpq_canonicalize(out->q);
    settle(out);
    out->has_decimal = true;
    return true;
}

static bool number(parser *p, ans_val *out)
{
    size_t st = p->i, digits = 0, frac = 0;
    while (isdigit((unsigned char)p->s[p->i]))
        p->i++, digits++;
    if (p->s[p->i] == '.' && isdigit((unsigned char)p->s[p->i + 1])) {
        p->i++;
        while (isdigit((unsigned char)p->s[p->i]))
            p->i++, digits++, frac++;
    }
    if (digits == 0)
        return fail(p, "expected a number");
    if (digits > ANS_EVAL_MAX_DIGITS)
        return fail(p, "number too long to compare exactly");
    char *buf = malloc(digits + 1);
    if (!buf)
        return fail(p, "out of memory");
    size_t k = 0;
    for (size_t i = st; i < p->i; i++)
        if (p->s[i] != '.')
            buf[k++] = p->s[i];
    buf[k] = '\0';
    mpz_set_str(mpq_numref(out->q), buf, 10);
    free(buf);
    mpz_ui_pow_ui(mpq_denref(out->q), 10, frac);
    mpq_canonicalize(out->q);
    out->exact = true;
    out->has_decimal = frac > 0;
    settle(out);
    /* scientific notation: 1.5e-3, 2E10 */
    if ((p->s[p->i] == 'e' || p->s[p->i] == 'E') &&
        (isdigit((unsigned char)p->s[p->i + 1]) ||
         ((p->s[p->i + 1] == '-' || p->s[p->i + 1] == '+') &&
          isdigit((unsigned char)p->s[p->i + 2]))))
        return sci_exponent(p, out, digits);
    return true;
}

/* \sqrt[n]{x} or \sqrt{x}. */
static bool latex_root(parser *p, ans_val *out)
{
    ans_val idx;
    ans_val_init(&idx);
    bool has_idx = false, ok = true;
    skip_ws(p);
    if (p->s[p->i] == '[') {
        p->i++;
        ok = expr(p, &idx);
        skip_ws(p);
        if (ok && p->s[p->i] != ']')
            ok = fail(p, "missing ]");
        p->i += ok ? 1 : 0;
        has_idx = true;
    }
    if (ok)
        ok = group(p, out);
    if (ok && has_idx && !(idx.exact && mpz_cmp_ui(mpq_denref(idx.q), 1) == 0)) {
        /* a root of a non-integer degree: only as a double */
        if (idx.v == 0)
            ok = fail(p, "zeroth root");
        else if (out->v < 0)
            ok = fail(p, "root of a negative number");
        else
            set_real(out, pow(out->v, 1.0 / idx.v)), out->has_ops = true;
    } else if (ok) {
        unsigned long k = 2;
        if (has_idx) {
            if (mpz_cmp_ui(mpq_numref(idx.q), 2) < 0 || mpz_cmp_ui(mpq_numref(idx.q), 64) > 0)
                ok = mpq_sgn(idx.q) == 0 ? fail(p, "zeroth root")
                                         : fail(p, "root degree must be 2 to 64");
            else
                k = mpz_get_ui(mpq_numref(idx.q));
        }
        if (ok)
            ok = v_root(p, out, k);
    }
    ans_val_clear(&idx);
    return ok;
}

static bool bracketed(parser *p, ans_val *out)
{
    char c = p->s[p->i];
    char close = c == '(' ? ')' : c == '[' ? ']' : c == '{' ? '}' : '|';
    p->i++;
    if (!expr(p, out))
        return false;
    skip_ws(p);
    if (p->s[p->i] != close)
        return fail(p, c == '|' ? "unbalanced |" : "unbalanced brackets");
    p->i++;
    if (c == '|') {
        if (out->v < 0)
            negate(out);
        out->has_ops = true;
    }
    return true;
}

static bool primary(parser *p, ans_val *out)
{
    if (++p->steps > MAX_STEPS)
        return fail(p, "expression too long");
    skip_ws(p);
    char c = p->s[p->i];
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)p->s[p->i + 1])))
        return number(p, out);
    if (c == '(' || c == '[' || c == '{' || c == '|')
        return bracketed(p, out);
    if (eat(p, "\\frac")) {
        ans_val b;
        ans_val_init(&b);
        bool ok = group(p, out) && group(p, &b) && v_div(p, out, &b);
        ans_val_clear(&b);
        return ok;
    }
    if (eat(p, "\\sqrt"))
        return latex_root(p, out);
    if (eat(p, "sqrt")) {
        skip_ws(p);
        bool ok = (p->s[p->i] == '(' || p->s[p->i] == '{') ? primary(p, out) : unary(p, out);
        return ok && v_root(p, out, 2);
    }
    if (eat(p, "\\pi") || eat(p, "pi")) {
        set_real(out, M_PI);
        out->has_ops = true;
        return true;
    }
    if (c == '\0')
        return fail(p, "unexpected end");
    if (isalpha((unsigned char)c) || c == '\\')
        return fail(p, "unknown symbol");
    return fail(p, "unexpected character");
}

static bool factorial(parser *p, ans_val *out)
{
    p->i++;
    if (!out->exact || mpz_cmp_ui(mpq_denref(out->q), 1) != 0 || mpq_sgn(out->q) < 0 ||
        mpz_cmp_ui(mpq_numref(out->q), MAX_FACTORIAL) > 0)
        return fail(p, "factorial of a non-integer or too large");
    mpz_fac_ui(mpq_numref(out->q), mpz_get_ui(mpq_numref(out->q)));
    settle(out);
    out->has_ops = true;
    skip_ws(p);
    return true;
}

/* primary ('^' exponent)?, right-associative; '!' for factorials. */
static bool power(parser *p, ans_val *out)
{
    if (!primary(p, out))
        return false;
    skip_ws(p);
    if (p->s[p->i] == '!' && p->s[p->i + 1] != '=' && !factorial(p, out))
        return false;
    if (p->s[p->i] != '^')
        return true;
    p->i++;
    if (++p->depth > ANS_EVAL_MAX_DEPTH)
        return fail(p, "expression nested too deeply");
    ans_val e;
    ans_val_init(&e);
    skip_ws(p);
    bool ok = p->s[p->i] == '{' ? group(p, &e) : unary(p, &e);
    p->depth--;
    ok = ok && v_pow(p, out, &e);
    ans_val_clear(&e);
    return ok;
}

static bool unary(parser *p, ans_val *out)
{
    if (++p->depth > ANS_EVAL_MAX_DEPTH)
        return fail(p, "expression nested too deeply");
    skip_ws(p);
    bool ok;
    if (p->s[p->i] == '-' || p->s[p->i] == '+') {
        bool neg = p->s[p->i] == '-';
        p->i++;
        ok = unary(p, out);
        if (ok && neg)
            negate(out);
    } else {
        ok = power(p, out);
    }
    p->depth--;
    return ok;
}

static bool starts_primary(parser *p)
{
    skip_ws(p);
    char c = p->s[p->i];
    return isdigit((unsigned char)c) || c == '(' || c == '{' || c == '[' || starts(p, "\\sqrt") ||
           starts(p, "\\frac") || starts(p, "\\pi") || starts(p, "pi") || starts(p, "sqrt");
}

/* Whether s[from..to) is an optionally signed run of digits (a mixed number's whole part). */
static bool plain_integer(const char *s, size_t from, size_t to)
{
    while (from < to && (s[from] == ' ' || s[from] == '-' || s[from] == '+'))
        from++;
    while (to > from && s[to - 1] == ' ')
        to--;
    if (from == to)
        return false;
    for (size_t i = from; i < to; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* a mixed number: 3\frac{1}{2} is 3 + 1/2 (and -3\frac{1}{2} is -(3 + 1/2)) */
static bool mixed_number(parser *p, size_t start, ans_val *out)
{
    ans_val f;
    ans_val_init(&f);
    bool ok = power(p, &f);
    if (ok) {
        bool neg = out->v < 0 || (out->v == 0 && p->s[start] == '-');
        if (neg)
            negate(&f);
        v_add(out, &f, 1);
    }
    ans_val_clear(&f);
    return ok;
}

/* One '*', '/' or implicit product step: out op= the next factor. */
static bool product_step(parser *p, ans_val *out, char op)
{
    ans_val b;
    ans_val_init(&b);
    bool ok;
    if (op == '*' || op == '/') {
        p->i++;
        ok = unary(p, &b);
        if (ok && op == '*')
            v_mul(out, &b);
        else if (ok)
            ok = v_div(p, out, &b);
    } else {
        /* implicit multiplication: 2\sqrt{3}, 2pi, 3(4+1) */
        ok = power(p, &b);
        if (ok)
            v_mul(out, &b);
    }
    ans_val_clear(&b);
    return ok;
}

static bool term(parser *p, ans_val *out)
{
    skip_ws(p);
    size_t start = p->i;
    if (!unary(p, out))
        return false;
    if (plain_integer(p->s, start, p->i) && out->exact && starts(p, "\\frac") &&
        !mixed_number(p, start, out))
        return false;
    for (;;) {
        if (++p->steps > MAX_STEPS)
            return fail(p, "expression too long");
        skip_ws(p);
        char c = p->s[p->i];
        if (c == '*' || c == '/') {
            if (!product_step(p, out, c))
                return false;
        } else if (starts_primary(p)) {
            if (!product_step(p, out, ' '))
                return false;
        } else {
            return true;
        }
    }
}

static bool expr(parser *p, ans_val *out)
{
    if (++p->depth > ANS_EVAL_MAX_DEPTH)
        return fail(p, "expression nested too deeply");
    bool ok = term(p, out);
    while (ok) {
        skip_ws(p);
        char c = p->s[p->i];
        if (c != '+' && c != '-')
            break;
        p->i++;
        ans_val b;
        ans_val_init(&b);
        ok = term(p, &b);
        if (ok)
            v_add(out, &b, c == '-' ? -1 : 1);
        ans_val_clear(&b);
    }
    p->depth--;
    return ok;
}

bool ans_eval(const char *s, ans_val *out, char *why, int why_len)
{
    parser p = {.s = s, .why = why, .why_len = why_len};
    ans_val_init(out);
    if (!expr(&p, out))
        return false;
    skip_ws(&p);
    if (p.s[p.i] != '\0') {
        fail(&p, isalpha((unsigned char)p.s[p.i]) || p.s[p.i] == '\\' ? "unknown symbol"
                                                                      : "unexpected character");
        return false;
    }
    if (!out->exact && !isfinite(out->v)) {
        fail(&p, "value too large to compare numerically");
        return false;
    }
    return true;
}
